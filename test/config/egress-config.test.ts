import { describe, expect, it } from 'vitest';
import { egressConfigSchema, parseEgressConfig } from '../../src/config/egress-config.js';

function ok(env: Record<string, string>) {
  const result = parseEgressConfig(env);
  if (result.config === undefined) throw new Error(result.problems.join('\n'));
  return result.config;
}

describe('parseEgressConfig', () => {
  it('defaults: ports 80 and 443, no exceptions, any public host, 64 connections, 120 s idle', () => {
    expect(ok({})).toEqual({
      allowedPorts: [80, 443],
      exceptions: [],
      hostsCeiling: ['*'],
      defaultHosts: ['*'],
      deniedCidrs: [],
      maxConnections: 64,
      idleTimeoutSeconds: 120,
    });
  });

  it('reads every variable, normalising hosts, exceptions and ranges', () => {
    const config = ok({
      KILN_EGRESS_ALLOWED_PORTS: '443, 80 8443,443',
      KILN_EGRESS_EXCEPTIONS: '127.0.0.1:4873, Mirror.Corp.Example:8081 [::1]:5000',
      KILN_EGRESS_HOSTS_CEILING: '*.npmjs.org, *.Corp.Example, 127.0.0.1, ::1',
      KILN_EGRESS_DEFAULT_HOSTS: 'registry.npmjs.org 127.0.0.1',
      KILN_EGRESS_DENIED_CIDRS: '198.51.100.7/32, 2a00:1450::/32',
      KILN_EGRESS_MAX_CONNECTIONS: '16',
      KILN_EGRESS_IDLE_TIMEOUT_SECONDS: '30',
    });
    expect(config).toEqual({
      allowedPorts: [443, 80, 8443],
      exceptions: [
        { host: '127.0.0.1', port: 4873 },
        { host: 'mirror.corp.example', port: 8081 },
        { host: '::1', port: 5000 },
      ],
      hostsCeiling: ['*.npmjs.org', '*.corp.example', '127.0.0.1', '::1'],
      defaultHosts: ['registry.npmjs.org', '127.0.0.1'],
      deniedCidrs: ['198.51.100.7/32', '2a00:1450::/32'],
      maxConnections: 16,
      idleTimeoutSeconds: 30,
    });
  });

  it('defaults the default list to the ceiling', () => {
    expect(ok({ KILN_EGRESS_HOSTS_CEILING: '*.npmjs.org' }).defaultHosts).toEqual(['*.npmjs.org']);
  });

  it('returns a deeply frozen config', () => {
    const config = ok({ KILN_EGRESS_EXCEPTIONS: '127.0.0.1:4873' });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.exceptions)).toBe(true);
    expect(Object.isFrozen(config.exceptions[0])).toBe(true);
  });

  it('treats empty values as unset', () => {
    expect(ok({ KILN_EGRESS_ALLOWED_PORTS: '', KILN_EGRESS_HOSTS_CEILING: '' })).toMatchObject({
      allowedPorts: [80, 443],
      hostsCeiling: ['*'],
    });
  });

  it('reports every invalid variable at once, by name', () => {
    const result = parseEgressConfig({
      KILN_EGRESS_ALLOWED_PORTS: '80,0,70000,http',
      KILN_EGRESS_EXCEPTIONS: 'mirror.example, [::1]:5000, ::1:5000',
      KILN_EGRESS_HOSTS_CEILING: '*.ok.example, bad!host, *.',
      KILN_EGRESS_DENIED_CIDRS: '10.0.0.0, 10.0.0.0/33',
      KILN_EGRESS_MAX_CONNECTIONS: '0',
      KILN_EGRESS_IDLE_TIMEOUT_SECONDS: 'soon',
    });
    expect(result.problems).toEqual([
      'KILN_EGRESS_ALLOWED_PORTS: not a port (1-65535): 0, 70000, http',
      'KILN_EGRESS_EXCEPTIONS: not host:port: mirror.example, ::1:5000',
      'KILN_EGRESS_HOSTS_CEILING: not a host, *.suffix or *: bad!host, *.',
      'KILN_EGRESS_DENIED_CIDRS: not a CIDR range: 10.0.0.0, 10.0.0.0/33',
      expect.stringMatching(/^KILN_EGRESS_MAX_CONNECTIONS: /),
      expect.stringMatching(/^KILN_EGRESS_IDLE_TIMEOUT_SECONDS: /),
    ]);
  });

  it('refuses a default list wider than the ceiling, naming what is outside', () => {
    expect(
      parseEgressConfig({
        KILN_EGRESS_HOSTS_CEILING: '*.npmjs.org',
        KILN_EGRESS_DEFAULT_HOSTS: 'registry.npmjs.org, github.com, *',
      }).problems,
    ).toEqual(['KILN_EGRESS_DEFAULT_HOSTS: outside KILN_EGRESS_HOSTS_CEILING: github.com, *']);
  });

  it('refuses an exception no build could reach because the ceiling leaves its host out', () => {
    expect(
      parseEgressConfig({
        KILN_EGRESS_HOSTS_CEILING: '*.npmjs.org',
        KILN_EGRESS_EXCEPTIONS: '127.0.0.1:4873',
      }).problems,
    ).toEqual([
      'KILN_EGRESS_EXCEPTIONS: not admitted by KILN_EGRESS_HOSTS_CEILING, so no build could reach: 127.0.0.1',
    ]);
  });

  it('exposes a plain object schema the daemon configuration can extend', () => {
    expect(Object.keys(egressConfigSchema.shape).sort()).toEqual([
      'KILN_EGRESS_ALLOWED_PORTS',
      'KILN_EGRESS_DEFAULT_HOSTS',
      'KILN_EGRESS_DENIED_CIDRS',
      'KILN_EGRESS_EXCEPTIONS',
      'KILN_EGRESS_HOSTS_CEILING',
      'KILN_EGRESS_IDLE_TIMEOUT_SECONDS',
      'KILN_EGRESS_MAX_CONNECTIONS',
    ]);
    expect(() => egressConfigSchema.extend({})).not.toThrow();
  });
});
