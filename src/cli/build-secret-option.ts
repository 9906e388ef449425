import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { usage } from './cli-exit.js';

/** Reads a secret file; injectable so tests need no files. */
export type SecretFileReader = (file: string) => Promise<string>;

const readUtf8: SecretFileReader = (file) => readFile(file, 'utf8');

/**
 * `--secret id=ID,src=FILE` / `--secret id=ID,env=VAR` (Docker's spelling; `source=` and
 * `type=file|env` are accepted too) → the `secret.<id>` parts of `POST /builds`, which the
 * daemon holds in memory for this build only. A missing file or variable is a usage error, as
 * with `docker build`.
 */
export async function buildSecretFields(
  specs: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  cwd: string,
  read: SecretFileReader = readUtf8,
): Promise<[string, string][]> {
  const fields = new Map<string, string>();
  for (const spec of specs) {
    const keys = new Map<string, string>();
    for (const pair of spec.split(',')) {
      const eq = pair.indexOf('=');
      if (eq <= 0) throw usage(`--secret ${spec}: expected id=ID,src=FILE or id=ID,env=VAR`);
      keys.set(pair.slice(0, eq).trim(), pair.slice(eq + 1));
    }
    const id = keys.get('id');
    const src = keys.get('src') ?? keys.get('source');
    const type = keys.get('type') ?? (keys.has('env') ? 'env' : 'file');
    if (id === undefined || id === '') throw usage(`--secret ${spec}: id=ID is required`);
    if (fields.has(id)) throw usage(`--secret: id ${id} is given twice`);
    let value: string;
    if (type === 'env') {
      const name = keys.get('env') ?? src ?? id;
      const fromEnv = env[name];
      if (fromEnv === undefined) throw usage(`--secret ${spec}: ${name} is not set`);
      value = fromEnv;
    } else if (type === 'file') {
      if (src === undefined) throw usage(`--secret ${spec}: src=FILE is required`);
      try {
        value = await read(path.resolve(cwd, src));
      } catch {
        throw usage(`--secret ${spec}: cannot read ${src}`);
      }
    } else {
      throw usage(`--secret ${spec}: type must be file or env`);
    }
    fields.set(id, value);
  }
  return [...fields].map(([id, value]) => [`secret.${id}`, value]);
}
