import { exportJWK, generateKeyPair, SignJWT, type JWTPayload } from 'jose';
import type { RegistryHarness } from './registry-harness.js';

/** Registry-token claims an attacker would forge: push+pull on acme/web for build `buildId`. */
export function forgedRegistryClaims(h: RegistryHarness, buildId: string): JWTPayload {
  const now = Math.floor(h.clock.now().getTime() / 1000);
  return {
    iss: 'kiln',
    aud: 'kiln',
    sub: `build:${buildId}`,
    iat: now,
    exp: now + 600,
    access: [{ type: 'repository', name: 'acme/web', actions: ['pull', 'push'] }],
  };
}

/** `claims` signed by a fresh ES256 key that claims the registry key's `kid`. */
export async function signedByForeignKey(h: RegistryHarness, claims: JWTPayload): Promise<string> {
  const { privateKey } = await generateKeyPair('ES256');
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'ES256', kid: h.keys.registry.kid })
    .sign(privateKey);
}

/** `claims` as an unsigned `alg: none` token with `header`. */
export function unsignedToken(header: Record<string, unknown>, claims: JWTPayload): string {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  return `${b64(header)}.${b64(claims)}.`;
}

/** `claims` signed HS256 with the registry's public JWK as the secret (algorithm confusion). */
export async function signedHs256WithPublicKey(
  h: RegistryHarness,
  claims: JWTPayload,
): Promise<string> {
  const secret = new TextEncoder().encode(
    JSON.stringify(await exportJWK(h.keys.registry.publicKey)),
  );
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(secret);
}
