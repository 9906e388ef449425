import { describe, expect, it } from 'vitest';
import {
  CloudHypervisorEventParser,
  isGuestRebootEvent,
} from '../../../src/vm/cloud-hypervisor/cloud-hypervisor-event-parser.js';

/** Events as Cloud Hypervisor writes them: serde_json pretty output, then a blank line. */
function written(source: string, event: string, properties: Record<string, string> | null) {
  return `${JSON.stringify({ timestamp: { secs: 1, nanos: 5 }, source, event, properties }, null, 2)}\n\n`;
}

describe('CloudHypervisorEventParser', () => {
  it('parses pretty-printed events separated by blank lines', () => {
    const parser = new CloudHypervisorEventParser();
    const events = parser.push(
      Buffer.from(written('vmm', 'starting', null) + written('vm', 'booted', { id: 'x' })),
    );
    expect(events).toEqual([
      { source: 'vmm', event: 'starting', properties: null },
      { source: 'vm', event: 'booted', properties: { id: 'x' } },
    ]);
  });

  it('reassembles events cut at every byte boundary', () => {
    const parser = new CloudHypervisorEventParser();
    const bytes = Buffer.from(written('vm', 'rebooting', null) + written('vm', 'rebooted', null));
    const events = [];
    for (const byte of bytes) events.push(...parser.push(Buffer.from([byte])));
    expect(events.map((e) => e.event)).toEqual(['rebooting', 'rebooted']);
  });

  it('is not confused by braces and escaped quotes inside strings', () => {
    const parser = new CloudHypervisorEventParser();
    const events = parser.push(Buffer.from(written('virtio-device', 'activated', { id: '}{"\\' })));
    expect(events).toEqual([
      { source: 'virtio-device', event: 'activated', properties: { id: '}{"\\' } },
    ]);
  });

  it('skips garbage and objects that are not events', () => {
    const parser = new CloudHypervisorEventParser();
    const events = parser.push(
      Buffer.from(`noise\n{"not":"an event"}\n\n{bad json}\n${written('vm', 'shutdown', null)}`),
    );
    expect(events).toEqual([{ source: 'vm', event: 'shutdown', properties: null }]);
  });
});

describe('isGuestRebootEvent', () => {
  it('recognises the vm rebooting and rebooted events only', () => {
    expect(isGuestRebootEvent({ source: 'vm', event: 'rebooting', properties: null })).toBe(true);
    expect(isGuestRebootEvent({ source: 'vm', event: 'rebooted', properties: null })).toBe(true);
    expect(isGuestRebootEvent({ source: 'vm', event: 'booted', properties: null })).toBe(false);
    expect(isGuestRebootEvent({ source: 'vmm', event: 'rebooting', properties: null })).toBe(false);
  });
});
