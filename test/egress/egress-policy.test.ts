import { describe, expect, it } from 'vitest';
import { createAddressClassifier } from '../../src/egress/address-classifier.js';
import { EgressPolicy } from '../../src/egress/egress-policy.js';
import { HostAllowlist } from '../../src/egress/host-allowlist.js';
import { parseConnectTarget, type ProxyTarget } from '../../src/egress/proxy-target.js';

function target(authority: string): ProxyTarget {
  const parsed = parseConnectTarget(authority);
  if (parsed.target === undefined) throw new Error(parsed.error);
  return parsed.target;
}

function policy(hosts: string[] = ['*']): EgressPolicy {
  const parsed = HostAllowlist.parse(hosts);
  if (parsed.allowlist === undefined) throw new Error('invalid test list');
  return new EgressPolicy({
    allowedPorts: [80, 443],
    exceptions: [
      { host: '127.0.0.1', port: 4873 },
      { host: 'mirror.internal', port: 8081 },
    ],
    allowlist: parsed.allowlist,
    classifyAddress: createAddressClassifier({ hostAddresses: ['8.8.4.4'] }),
  });
}

describe('EgressPolicy', () => {
  it('admits a public name on 80 and 443 before DNS', () => {
    expect(policy().checkTarget(target('registry.npmjs.org:443'))).toBeUndefined();
    expect(policy().checkTarget(target('registry.npmjs.org:80'))).toBeUndefined();
  });

  it('refuses other ports of an admitted name', () => {
    expect(policy().checkTarget(target('registry.npmjs.org:22'))).toBe('port_not_allowed');
    expect(policy().checkTarget(target('registry.npmjs.org:6379'))).toBe('port_not_allowed');
  });

  it('refuses a name outside the allowlist', () => {
    expect(policy(['*.npmjs.org']).checkTarget(target('github.com:443'))).toBe('host_not_allowed');
  });

  it("judges an IP literal's address first, so the reason names the address", () => {
    expect(policy().checkTarget(target('10.0.0.5:6379'))).toBe('private');
    expect(policy().checkTarget(target('0x7f.1:443'))).toBe('loopback');
    expect(policy().checkTarget(target('[::ffff:169.254.169.254]:80'))).toBe('cloud_metadata');
    expect(policy(['*.npmjs.org']).checkTarget(target('8.8.8.8:443'))).toBe('host_not_allowed');
  });

  it('lets an exception through on its own port whatever its address, and nowhere else', () => {
    const p = policy();
    expect(p.checkTarget(target('127.0.0.1:4873'))).toBeUndefined();
    expect(p.checkAddress(target('127.0.0.1:4873'), '127.0.0.1')).toEqual({
      address: '127.0.0.1',
      family: 4,
    });
    expect(p.checkTarget(target('127.0.0.1:4874'))).toBe('loopback');
    expect(p.checkTarget(target('mirror.internal:8081'))).toBeUndefined();
    expect(p.checkAddress(target('mirror.internal:8081'), '10.1.2.3')).toEqual({
      address: '10.1.2.3',
      family: 4,
    });
    expect(p.checkTarget(target('mirror.internal:443'))).toBeUndefined();
    expect(p.checkAddress(target('mirror.internal:443'), '10.1.2.3')).toEqual({
      refusal: 'private',
    });
  });

  it('keeps a narrowed build away from an exception its list does not name', () => {
    expect(policy(['registry.npmjs.org']).checkTarget(target('127.0.0.1:4873'))).toBe(
      'host_not_allowed',
    );
  });

  it('judges each resolved address and hands back the canonical one to connect to', () => {
    const p = policy();
    const t = target('registry.npmjs.org:443');
    expect(p.checkAddress(t, '104.16.0.35')).toEqual({ address: '104.16.0.35', family: 4 });
    expect(p.checkAddress(t, '::ffff:104.16.0.35')).toEqual({ address: '104.16.0.35', family: 4 });
    expect(p.checkAddress(t, '169.254.169.254')).toEqual({ refusal: 'cloud_metadata' });
    expect(p.checkAddress(t, '8.8.4.4')).toEqual({ refusal: 'host_address' });
    expect(p.checkAddress(t, 'garbage')).toEqual({ refusal: 'reserved' });
  });

  it('throws at construction on an invalid port', () => {
    expect(
      () =>
        new EgressPolicy({
          allowedPorts: [0],
          exceptions: [],
          allowlist: HostAllowlist.ANY,
          classifyAddress: createAddressClassifier({ hostAddresses: [] }),
        }),
    ).toThrow(TypeError);
  });
});
