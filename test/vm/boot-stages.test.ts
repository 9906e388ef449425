import { describe, expect, it } from 'vitest';
import { bootStageDurations, parseBootStages } from '../../src/vm/boot-stages.js';

describe('parseBootStages', () => {
  it('reads the guest markers in boot order, the first of each stage, ignoring other lines', () => {
    const console = [
      '[    0.000000] Linux version 6.1.0',
      'kiln-boot: initramfs 1.21',
      'kiln-boot: modules 1.40\r',
      'kiln-init: [1.70] root filesystem up',
      'kiln-boot: root 1.62',
      'kiln-boot: init 1.66',
      'kiln-boot: init 9.99',
      'kiln-boot: agent-exec 2.03',
      'garbage kiln-boot: agent-process 3.50',
      'kiln-boot: agent-ready 3.71',
    ].join('\n');
    expect(parseBootStages(console)).toEqual([
      { stage: 'initramfs', uptimeSeconds: 1.21 },
      { stage: 'modules', uptimeSeconds: 1.4 },
      { stage: 'root', uptimeSeconds: 1.62 },
      { stage: 'init', uptimeSeconds: 1.66 },
      { stage: 'agent-exec', uptimeSeconds: 2.03 },
      { stage: 'agent-process', uptimeSeconds: 3.5 },
      { stage: 'agent-ready', uptimeSeconds: 3.71 },
    ]);
  });

  it('skips unknown stages and unreadable uptimes', () => {
    const console = 'kiln-boot: warp 1.0\nkiln-boot: init x\nkiln-boot: init -1\nkiln-boot: root\n';
    expect(parseBootStages(console)).toEqual([]);
  });
});

describe('bootStageDurations', () => {
  it('gives the kernel uptime 0 to the first marker and each stage up to the next', () => {
    const marks = parseBootStages('kiln-boot: initramfs 1.25\nkiln-boot: init 1.75\n');
    expect(bootStageDurations(marks, 2.5)).toEqual([
      { stage: 'kernel', seconds: 1.25 },
      { stage: 'initramfs', seconds: 0.5 },
      { stage: 'init', seconds: 0.75 },
    ]);
    expect(bootStageDurations(marks)).toEqual([
      { stage: 'kernel', seconds: 1.25 },
      { stage: 'initramfs', seconds: 0.5 },
    ]);
    expect(bootStageDurations([])).toEqual([]);
  });
});
