import { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { describeDenial } from '../../src/egress/egress-denial.js';
import { EgressStats, MAX_DENIALS_KEPT, MAX_HOSTS_KEPT } from '../../src/egress/egress-stats.js';

const at = new Date('2026-01-01T00:00:00Z');

describe('EgressStats', () => {
  it('keeps the first MAX_DENIALS_KEPT denials and counts the rest', () => {
    const stats = new EgressStats();
    const kept: boolean[] = [];
    for (let i = 0; i < MAX_DENIALS_KEPT + 5; i += 1) {
      kept.push(
        stats.recordDenial(
          describeDenial({ host: `h${i}.test`, port: 443 }, 'host_not_allowed', at),
        ),
      );
    }
    expect(kept.filter(Boolean)).toHaveLength(MAX_DENIALS_KEPT);
    expect(kept.slice(-5)).toEqual([false, false, false, false, false]);
    const snapshot = stats.snapshot();
    expect(snapshot.denied).toHaveLength(MAX_DENIALS_KEPT);
    expect(snapshot.denied[0]!.message).toBe('denied h0.test:443: host not in allowed_hosts');
    expect(snapshot.deniedTotal).toBe(MAX_DENIALS_KEPT + 5);
  });

  it('keeps MAX_HOSTS_KEPT distinct hosts and counts connections to the others', async () => {
    const stats = new EgressStats();
    const sockets: Socket[] = [];
    for (let i = 0; i < MAX_HOSTS_KEPT + 3; i += 1) {
      const socket = new Socket();
      sockets.push(socket);
      stats.track(`h${i}.test`, 443, socket);
    }
    stats.track('h0.test', 443, new Socket());
    const snapshot = stats.snapshot();
    expect(snapshot.hosts).toHaveLength(MAX_HOSTS_KEPT);
    expect(snapshot.omittedConnections).toBe(3);
    expect(snapshot.openConnections).toBe(MAX_HOSTS_KEPT + 4);
    expect(snapshot.hosts.find((h) => h.host === 'h0.test')?.connections).toBe(2);
    const closed = sockets.map((s) => new Promise((resolve) => s.once('close', resolve)));
    for (const s of sockets) s.destroy();
    await Promise.all(closed);
    expect(stats.snapshot().openConnections).toBe(1);
  });

  it('formats the denial message with the resolved address only when it differs', () => {
    expect(
      describeDenial({ host: '10.0.0.5', port: 6379, address: '10.0.0.5' }, 'private', at).message,
    ).toBe('denied 10.0.0.5:6379: private address');
    expect(
      describeDenial({ host: 'db.test', port: 6379, address: '10.0.0.5' }, 'private', at).message,
    ).toBe('denied db.test:6379 (10.0.0.5): private address');
    expect(describeDenial({ host: '::1', port: 443 }, 'loopback', at).message).toBe(
      'denied [::1]:443: loopback address',
    );
  });
});
