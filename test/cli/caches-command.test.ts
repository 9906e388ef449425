import { describe, expect, it } from 'vitest';
import { cachesTable } from '../../src/cli/caches-command.js';
import { formatBytes } from '../../src/cli/parse-units.js';

describe('kiln caches rendering', () => {
  it('shows sizes in binary units with one decimal above bytes', () => {
    expect([
      formatBytes(0),
      formatBytes(1023),
      formatBytes(1024),
      formatBytes(1536 * 1024),
      formatBytes(10 * 1024 ** 3),
      formatBytes(3 * 1024 ** 4),
    ]).toEqual(['0 B', '1023 B', '1.0 KiB', '1.5 MiB', '10.0 GiB', '3.0 TiB']);
  });

  it('lines up scope, used, size, last use (the creation time before any build) and last build', () => {
    const base = {
      size_bytes: 10 * 1024 ** 3,
      last_commit_at: null,
      last_commit_build_id: null,
    };
    expect(
      cachesTable([
        {
          ...base,
          scope: 'main',
          used_bytes: 512 * 1024 ** 2,
          created_at: '2026-01-01T00:00:00.000Z',
          last_build_id: 'b_one',
          last_build_at: '2026-01-02T00:00:00.000Z',
        },
        {
          ...base,
          scope: 'release-builds',
          used_bytes: 0,
          created_at: '2026-01-03T00:00:00.000Z',
          last_build_id: null,
          last_build_at: null,
        },
      ]),
    ).toBe(
      [
        'SCOPE           USED       SIZE      LAST USED                 LAST BUILD',
        'main            512.0 MiB  10.0 GiB  2026-01-02T00:00:00.000Z  b_one',
        'release-builds  0 B        10.0 GiB  2026-01-03T00:00:00.000Z  -',
      ].join('\n'),
    );
  });
});
