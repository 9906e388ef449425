import { describe, expect, it } from 'vitest';
import {
  buildArgsFrom,
  buildFieldsFrom,
  imageTagsFrom,
  type BuildCliOptions,
} from '../../src/cli/build-options.js';
import { buildSecretFields } from '../../src/cli/build-secret-option.js';
import { CliExit } from '../../src/cli/cli-exit.js';
import { parseCpus, parseDuration, parseMemoryMb } from '../../src/cli/parse-units.js';
import { runCli } from '../../src/cli/run-cli.js';

const none: BuildCliOptions = {
  tag: [],
  buildArg: [],
  secret: [],
  storedSecret: [],
  allowHost: [],
};

function usageMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CliExit);
    expect((err as CliExit).exitCode).toBe(2);
    return (err as CliExit).message;
  }
  throw new Error('expected a usage error');
}

async function cli(args: string[], env: Record<string, string> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(args, {
    env: { KILN_URL: 'http://127.0.0.1:9', KILN_TOKEN: 't', ...env },
    stdout: (t) => out.push(t),
    stderr: (t) => err.push(t),
  });
  return { code, stdout: out.join(''), stderr: err.join('') };
}

describe('kiln build options → POST /builds fields', () => {
  it('maps every supported flag onto its field, in a fixed order, and leaves unset ones out', () => {
    expect(
      buildFieldsFrom(
        {
          ...none,
          tag: ['web'],
          buildArg: ['VERSION=1.2.3', 'EMPTY=', 'FROM_ENV'],
          storedSecret: ['npmrc', 'npmrc'],
          cacheScope: 'main',
          network: 'egress',
          timeout: 1800,
          memory: 2048,
          cpus: 2,
        },
        { FROM_ENV: 'yes' },
      ),
    ).toEqual([
      ['build_args', JSON.stringify({ VERSION: '1.2.3', EMPTY: '', FROM_ENV: 'yes' })],
      ['secrets', JSON.stringify(['npmrc'])],
      ['cache_scope', 'main'],
      ['timeout_seconds', '1800'],
      ['memory_mb', '2048'],
      ['cpus', '2'],
      ['network_mode', 'egress'],
      ['image_tags', JSON.stringify(['web'])],
    ]);
    expect(buildFieldsFrom(none, {})).toEqual([]);
  });

  it('sends every -t NAME[:TAG] once, in order, and refuses a registry host or an empty name', () => {
    expect(imageTagsFrom(['team/web'])).toEqual(['team/web']);
    expect(imageTagsFrom(['web:v1', 'api:v1', 'web:v1', 'web'])).toEqual([
      'web:v1',
      'api:v1',
      'web',
    ]);
    expect(imageTagsFrom([])).toEqual([]);
    expect(buildFieldsFrom({ ...none, tag: ['web:v1', 'team/api:2.0'] }, {})).toEqual([
      ['image_tags', JSON.stringify(['web:v1', 'team/api:2.0'])],
    ]);
    expect(usageMessage(() => imageTagsFrom(['127.0.0.1:8083/acme/web']))).toContain(
      'registry host',
    );
    expect(usageMessage(() => imageTagsFrom(['localhost/web:v1']))).toContain('registry host');
    expect(usageMessage(() => imageTagsFrom([':v1']))).toContain('the name is empty');
  });

  it('takes --build-arg K from the environment, and drops it when unset (as docker does)', () => {
    expect(buildArgsFrom(['A', 'B=x=y'], { A: '1' })).toEqual({ B: 'x=y', A: '1' });
    expect(buildArgsFrom(['MISSING'], {})).toEqual({});
    expect(usageMessage(() => buildArgsFrom(['1BAD=x'], {}))).toContain('NAME=VALUE');
  });

  it('sends --allow-host as allowed_hosts for egress builds only, as the daemon rules', () => {
    expect(
      buildFieldsFrom({ ...none, network: 'egress', allowHost: ['a.org', '*.b.org', 'a.org'] }, {}),
    ).toEqual([
      ['network_mode', 'egress'],
      ['allowed_hosts', JSON.stringify(['a.org', '*.b.org'])],
    ]);
    expect(usageMessage(() => buildFieldsFrom({ ...none, allowHost: ['x.org'] }, {}))).toContain(
      'add --network egress',
    );
    expect(
      usageMessage(() =>
        buildFieldsFrom({ ...none, network: 'isolated', allowHost: ['x.org'] }, {}),
      ),
    ).toContain('only applies to egress builds');
  });

  it('sends --engine as the engine field, and refuses a name that is no engine', () => {
    expect(buildFieldsFrom({ ...none, engine: 'buildah' }, {})).toContainEqual([
      'engine',
      'buildah',
    ]);
    expect(buildFieldsFrom(none, {}).map(([name]) => name)).not.toContain('engine');
    expect(usageMessage(() => buildFieldsFrom({ ...none, engine: 'podman' }, {}))).toContain(
      'use buildkit or buildah',
    );
  });

  it('parses durations, memory sizes and cpu counts', () => {
    expect([
      parseDuration('90s'),
      parseDuration('30m'),
      parseDuration('2h'),
      parseDuration('600'),
    ]).toEqual([90, 1800, 7200, 600]);
    expect([
      parseMemoryMb('512m'),
      parseMemoryMb('2g'),
      parseMemoryMb('2GiB'),
      parseMemoryMb('1.5g'),
      parseMemoryMb('2048'),
    ]).toEqual([512, 2048, 2048, 1536, 2048]);
    expect(() => parseMemoryMb('0.3m')).toThrow();
    expect(() => parseMemoryMb('lots')).toThrow();
    expect(parseCpus('4')).toBe(4);
    expect(() => parseCpus('1.5')).toThrow();
    expect(() => parseCpus('0')).toThrow();
  });

  it('exits 2 with a one-line reason for a bad flag, before touching the daemon', async () => {
    const engine = await cli(['build', '--engine', 'podman', '.']);
    expect(engine.code).toBe(2);
    expect(engine.stderr).toContain('buildkit, buildah');
    const network = await cli(['build', '--network', 'open', '.']);
    expect(network.code).toBe(2);
    expect(network.stderr).toContain('isolated, egress');
    const allowHost = await cli(['build', '--allow-host', 'x.org', '.']);
    expect(allowHost.code).toBe(2);
    expect(allowHost.stderr).toMatch(/^kiln: --allow-host: .*--network egress.*\n$/);
    const memory = await cli(['build', '--memory', 'lots', '.']);
    expect(memory.code).toBe(2);
    const unknown = await cli(['build', '--squash', '.']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("unknown option '--squash'");
  });

  it('exits 3 saying to log in when no daemon is configured', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await runCli(['builds'], {
      env: { HOME: '/nonexistent-kiln-home' },
      stdout: (t) => out.push(t),
      stderr: (t) => err.push(t),
    });
    expect(code).toBe(3);
    expect(err.join('')).toContain('kiln login URL');
  });
});

describe('--secret', () => {
  const files: Record<string, string> = { '/w/npmrc': 'from-file' };
  const read = (file: string) =>
    files[file] === undefined ? Promise.reject(new Error('ENOENT')) : Promise.resolve(files[file]);

  it('maps Docker spellings onto secret.<id> parts: src, source, type=env, env', async () => {
    expect(
      await buildSecretFields(
        ['id=a,src=npmrc', 'id=b,type=file,source=/w/npmrc', 'id=c,env=TOKEN', 'id=D,type=env'],
        { TOKEN: 't', D: 'd' },
        '/w',
        read,
      ),
    ).toEqual([
      ['secret.a', 'from-file'],
      ['secret.b', 'from-file'],
      ['secret.c', 't'],
      ['secret.D', 'd'],
    ]);
  });

  it('refuses a missing file or variable, a missing id and a repeated id as usage errors', async () => {
    const refused = async (specs: string[]) => {
      const err = await buildSecretFields(specs, {}, '/w', read).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CliExit);
      expect((err as CliExit).exitCode).toBe(2);
      return (err as CliExit).message;
    };
    expect(await refused(['id=a,src=missing'])).toContain('cannot read missing');
    expect(await refused(['id=a,env=UNSET'])).toContain('UNSET is not set');
    expect(await refused(['src=npmrc'])).toContain('id=ID is required');
    expect(await refused(['id=a,src=npmrc', 'id=a,src=npmrc'])).toContain('given twice');
    expect(await refused(['nonsense'])).toContain('expected id=ID');
  });
});
