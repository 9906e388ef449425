import { describe, expect, it } from 'vitest';
import { createAddressClassifier } from '../../src/egress/address-classifier.js';
import { formatHostPort, normalizeHost } from '../../src/egress/normalize-host.js';

describe('normalizeHost', () => {
  it.each([
    ['0x7f.1', '127.0.0.1'],
    ['2130706433', '127.0.0.1'],
    ['127.1', '127.0.0.1'],
    ['0177.0.0.1', '127.0.0.1'],
    ['0x7f.0x0.0x0.0x1', '127.0.0.1'],
    ['0x7f000001', '127.0.0.1'],
    ['127.0.0.1.', '127.0.0.1'],
    ['%31%32%37.0.0.1', '127.0.0.1'],
    ['017700000001', '127.0.0.1'],
    ['0xa.0.0.5', '10.0.0.5'],
    ['167772165', '10.0.0.5'],
    ['0251.0376.0251.0376', '169.254.169.254'],
    ['2852039166', '169.254.169.254'],
    ['0', '0.0.0.0'],
  ])('reads the IPv4 spelling %s as %s, the address a client connects to', (text, address) => {
    expect(normalizeHost(text)).toEqual({ kind: 'ip', host: address, family: 4 });
  });

  it.each([
    ['[::ffff:127.0.0.1]', '::ffff:7f00:1'],
    ['[0:0:0:0:0:0:0:1]', '::1'],
    ['[::1]', '::1'],
    ['::1', '::1'],
    ['[FD00:EC2::254]', 'fd00:ec2::254'],
  ])('reads the IPv6 literal %s as %s', (text, address) => {
    expect(normalizeHost(text)).toEqual({ kind: 'ip', host: address, family: 6 });
  });

  it.each(['0x7f.1', '2130706433', '127.1', '0177.0.0.1', '[::ffff:127.0.0.1]', '[::1]'])(
    'leaves no spelling of loopback (%s) that the address policy passes',
    (text) => {
      const host = normalizeHost(text);
      expect(host?.kind).toBe('ip');
      expect(createAddressClassifier({ hostAddresses: [] })(host!.host)).toBe('loopback');
    },
  );

  it.each([
    ['Registry.NPMJS.org', 'registry.npmjs.org'],
    ['registry.npmjs.org.', 'registry.npmjs.org'],
    ['bücher.example', 'xn--bcher-kva.example'],
    ['_dmarc.example.com', '_dmarc.example.com'],
    ['localhost', 'localhost'],
    ['1.2.3.example', '1.2.3.example'],
  ])('normalises the name %s to %s', (text, name) => {
    expect(normalizeHost(text)).toEqual({ kind: 'name', host: name });
  });

  it.each([
    '',
    '.',
    'a..b',
    '*.example.com',
    'exa mple.com',
    'example.com:443',
    'example.com:',
    'user@example.com',
    'example.com/path',
    'example.com?q',
    'example.com#f',
    '1.2.3.4.5',
    '256.0.0.1',
    '[fe80::1%25eth0]',
    '[::1',
    '-leading.example',
    `${'a'.repeat(64)}.example`,
    `${'a.'.repeat(127)}example`,
  ])('refuses %j, which is not a bare host', (text) => {
    expect(normalizeHost(text)).toBeUndefined();
  });
});

describe('formatHostPort', () => {
  it('brackets IPv6 literals', () => {
    expect(formatHostPort('::1', 443)).toBe('[::1]:443');
    expect(formatHostPort('10.0.0.5', 6379)).toBe('10.0.0.5:6379');
    expect(formatHostPort('example.com', 80)).toBe('example.com:80');
  });
});
