import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ApiTokenService } from '../../src/auth/api-token-service.js';
import { loadOrCreateKeys } from '../../src/auth/key-store.js';
import { parseDuration as parseTtl } from '../../src/cli/parse-units.js';
import { runCli } from '../../src/cli/run-cli.js';
import { ManualClock } from '../helpers/manual-clock.js';

let dataDir: string;
beforeEach(() => {
  dataDir = mkdtempSync(path.join(tmpdir(), 'kiln-cli-'));
});
afterEach(() => {
  rmSync(dataDir, { recursive: true, force: true });
});

async function cli(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const clock = new ManualClock(Date.parse('2026-03-01T00:00:00Z'));
  const code = await runCli(args, {
    env: { KILN_DATA_DIR: dataDir },
    stdout: (t) => out.push(t),
    stderr: (t) => err.push(t),
    clock,
  });
  return { code, stdout: out.join(''), stderr: err.join(''), clock };
}

describe('kiln token create', () => {
  it('prints only a token the daemon verifies, with tenant, scopes and ttl', async () => {
    const r = await cli([
      'token',
      'create',
      '--tenant',
      'acme',
      '--scope',
      'builds:write,builds:read',
      '--ttl',
      '2h',
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\n$/);
    const keys = await loadOrCreateKeys(dataDir);
    expect(statSync(path.join(dataDir, 'keys', 'api.jwk')).mode & 0o777).toBe(0o600);
    const verifier = new ApiTokenService({ key: keys.api, clock: r.clock });
    r.clock.advance(7199_000);
    const principal = await verifier.verify(r.stdout.trim());
    expect(principal.tenant).toBe('acme');
    expect([...principal.scopes].sort()).toEqual(['builds:read', 'builds:write']);
    r.clock.advance(2_000);
    await expect(verifier.verify(r.stdout.trim())).rejects.toMatchObject({
      code: 'INVALID_TOKEN',
    });
  });

  it('refuses an unknown scope and a reserved tenant with a non-zero exit', async () => {
    const bad = await cli(['token', 'create', '--tenant', 'acme', '--scope', 'root']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('unknown scope');
    const reserved = await cli([
      'token',
      'create',
      '--tenant',
      'library',
      '--scope',
      'builds:read',
    ]);
    expect(reserved.code).toBe(2);
    expect(reserved.stdout).toBe('');
  });

  it('refuses a tenant that cannot start a repository name, such as "acme-"', async () => {
    const r = await cli(['token', 'create', '--tenant', 'acme-', '--scope', 'builds:write']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('invalid tenant name');
  });

  it('parses ttl units', () => {
    expect([parseTtl('30d'), parseTtl('12h'), parseTtl('90m'), parseTtl('45')]).toEqual([
      2_592_000, 43_200, 5_400, 45,
    ]);
    expect(() => parseTtl('1y')).toThrow();
  });
});
