import { describe, expect, it } from 'vitest';
import { parseAgentMessage, parseHostMessage } from '../../common/protocol/parse-message.js';

describe('parseAgentMessage', () => {
  it('accepts each agent message type', () => {
    const ok = [
      { type: 'hello', protocol: 1, agentVersion: '0.1.0', engines: ['buildah'] },
      { type: 'phase', phase: 'building', at: 1 },
      { type: 'log', stream: 'stderr', data: 'x', at: 2 },
      {
        type: 'result',
        ok: true,
        imageDigest: `sha256:${'a'.repeat(64)}`,
        imageRef: '10.0.2.100:5000/acme/web:b_x',
        phaseSeconds: { building: 1 },
        provenance: {
          sourceSha256: 'a',
          treeSha256: 'b',
          lockfiles: {},
          baseImages: {},
          engine: { name: 'buildah', version: '1.28' },
        },
      },
      {
        type: 'result',
        ok: false,
        code: 'build_failed',
        message: 'm',
        logTail: [],
        phaseSeconds: {},
      },
    ];
    expect(ok.map((m) => parseAgentMessage(m).ok)).toEqual([true, true, true, true, true]);
  });

  it('refuses unknown types, bad phases, bad digests and bad codes with a reason', () => {
    const bad = [
      { type: 'shell', cmd: 'rm -rf /' },
      { type: 'phase', phase: 'mining', at: 1 },
      { type: 'result', ok: false, code: 'Bad Code', message: '', logTail: [], phaseSeconds: {} },
      { type: 'log', stream: 'stdin', data: '', at: 0 },
    ];
    for (const m of bad) {
      const r = parseAgentMessage(m);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error.length).toBeGreaterThan(0);
    }
  });
});

describe('parseHostMessage', () => {
  it('accepts start and cancel and refuses a start without a token', () => {
    expect(parseHostMessage({ type: 'start', registryToken: 't', secrets: { a: 'b' } }).ok).toBe(
      true,
    );
    expect(parseHostMessage({ type: 'cancel', reason: 'user' }).ok).toBe(true);
    expect(parseHostMessage({ type: 'start', registryToken: '', secrets: {} }).ok).toBe(false);
  });
});
