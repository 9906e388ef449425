import { randomUUID } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from 'jose';
import { createPrivateFile } from './create-private-file.js';

/** Signing algorithm for every token Kiln issues; pinned on verification. */
export const TOKEN_ALG = 'ES256';
/** `iss` of every token Kiln issues. */
export const TOKEN_ISSUER = 'kiln';
/**
 * `aud` of API tokens; registry tokens use the registry service name
 * (docs/contracts.md#tokens-and-scopes).
 */
export const API_AUDIENCE = 'kiln-api';

export interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
}

/** One key pair per token family, so neither can ever verify as the other. */
export interface KeySet {
  api: SigningKey;
  registry: SigningKey;
}

/**
 * Loads the daemon's signing keys from `<dataDir>/keys`, generating them on first start.
 * Private key files are created with mode 0600 and never overwritten.
 */
export async function loadOrCreateKeys(dataDir: string): Promise<KeySet> {
  const dir = path.join(dataDir, 'keys');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  return {
    api: await loadOrCreate(path.join(dir, 'api.jwk')),
    registry: await loadOrCreate(path.join(dir, 'registry.jwk')),
  };
}

async function loadOrCreate(file: string): Promise<SigningKey> {
  let jwk: JWK;
  try {
    jwk = JSON.parse(await readFile(file, 'utf8')) as JWK;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    const { privateKey } = await generateKeyPair(TOKEN_ALG, { extractable: true });
    jwk = { ...(await exportJWK(privateKey)), kid: randomUUID(), alg: TOKEN_ALG };
    // Another process may have created it meanwhile; then read theirs.
    if (!(await createPrivateFile(file, JSON.stringify(jwk)))) {
      jwk = JSON.parse(await readFile(file, 'utf8')) as JWK;
    }
  }
  if (typeof jwk.kid !== 'string' || typeof jwk.d !== 'string') {
    throw new Error(`signing key file ${file} is not a private JWK with a kid`);
  }
  const { d: _d, ...publicJwk } = jwk;
  const privateKey = (await importJWK(jwk, TOKEN_ALG)) as CryptoKey;
  const publicKey = (await importJWK(publicJwk, TOKEN_ALG)) as CryptoKey;
  return { kid: jwk.kid, privateKey, publicKey };
}
