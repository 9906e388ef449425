import { describe, expect, it } from 'vitest';
import { parseAbsoluteTarget, parseConnectTarget } from '../../src/egress/proxy-target.js';

describe('parseConnectTarget', () => {
  it('splits host and port and normalises the host', () => {
    expect(parseConnectTarget('Registry.npmjs.org:443')).toEqual({
      target: { host: { kind: 'name', host: 'registry.npmjs.org' }, port: 443 },
    });
    expect(parseConnectTarget('0x7f.1:443')).toEqual({
      target: { host: { kind: 'ip', host: '127.0.0.1', family: 4 }, port: 443 },
    });
    expect(parseConnectTarget('[::ffff:127.0.0.1]:22')).toEqual({
      target: { host: { kind: 'ip', host: '::ffff:7f00:1', family: 6 }, port: 22 },
    });
  });

  it.each([
    'example.com',
    'example.com:',
    ':443',
    'example.com:0',
    'example.com:65536',
    'example.com:123456',
    '::1:443',
    'evil.example@127.0.0.1:443',
    'example.com/x:443',
    'http://example.com:443',
  ])('refuses %j with a reason', (authority) => {
    expect(parseConnectTarget(authority).error).toEqual(expect.any(String));
  });
});

describe('parseAbsoluteTarget', () => {
  it('takes host, port (80 by default) and the origin-form path', () => {
    expect(parseAbsoluteTarget('http://Example.com/a/b?c=d#frag')).toEqual({
      target: { host: { kind: 'name', host: 'example.com' }, port: 80 },
      path: '/a/b?c=d',
    });
    expect(parseAbsoluteTarget('http://2130706433:8080/')).toEqual({
      target: { host: { kind: 'ip', host: '127.0.0.1', family: 4 }, port: 8080 },
      path: '/',
    });
  });

  it.each([
    ['/relative', 'absolute'],
    ['https://example.com/', 'CONNECT'],
    ['ftp://example.com/', 'http://'],
    ['http://user:pw@example.com/', 'credentials'],
    ['http://1.2.3.4.5/', 'absolute'],
  ])('refuses %s', (url, why) => {
    expect(parseAbsoluteTarget(url).error).toContain(why);
  });
});
