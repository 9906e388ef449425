import { describe, expect, it } from 'vitest';
import { canonicalAddress, createAddressClassifier } from '../../src/egress/address-classifier.js';
import type { AddressRefusal } from '../../src/egress/egress-denial.js';

const classify = createAddressClassifier({ hostAddresses: [] });

describe('createAddressClassifier', () => {
  it.each<[string, AddressRefusal]>([
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['10.0.0.5', 'private'],
    ['10.255.255.255', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['100.64.0.1', 'carrier_grade_nat'],
    ['100.127.255.255', 'carrier_grade_nat'],
    ['100.100.100.200', 'carrier_grade_nat'],
    ['169.254.169.254', 'cloud_metadata'],
    ['169.254.0.1', 'link_local'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['255.255.255.255', 'broadcast'],
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['192.0.2.1', 'reserved'],
    ['198.18.0.1', 'reserved'],
    ['240.0.0.1', 'reserved'],
  ])('refuses IPv4 %s as %s', (address, reason) => {
    expect(classify(address)).toBe(reason);
  });

  it.each<[string, AddressRefusal]>([
    ['::1', 'loopback'],
    ['::', 'unspecified'],
    ['fc00::1', 'unique_local'],
    ['fd12:3456:789a::1', 'unique_local'],
    ['fd00:ec2::254', 'cloud_metadata'],
    ['fe80::1', 'link_local'],
    ['febf:ffff::1', 'link_local'],
    ['fec0::1', 'site_local'],
    ['ff02::1', 'multicast'],
    ['2001:db8::1', 'reserved'],
    ['100::1', 'reserved'],
  ])('refuses IPv6 %s as %s', (address, reason) => {
    expect(classify(address)).toBe(reason);
  });

  it.each<[string, AddressRefusal]>([
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['0:0:0:0:0:ffff:a00:5', 'private'],
    ['::ffff:169.254.169.254', 'cloud_metadata'],
    ['::ffff:192.168.1.1', 'private'],
    ['::ffff:100.64.0.1', 'carrier_grade_nat'],
    ['::ffff:0.0.0.0', 'unspecified'],
    ['::ffff:255.255.255.255', 'broadcast'],
    ['::ffff:224.0.0.1', 'multicast'],
    ['::ffff:0:10.0.0.5', 'private'],
    ['64:ff9b::10.0.0.5', 'private'],
    ['64:ff9b::7f00:1', 'loopback'],
    ['64:ff9b:1::808:808', 'ipv6_transition'],
    ['2002:a00:5::1', 'private'],
    ['2002:a9fe:a9fe::1', 'cloud_metadata'],
    ['2002:808:808::1', 'ipv6_transition'],
    ['2001:0:a00:5::1', 'private'],
    ['2001:0:808:808::80ff:fffe', 'loopback'],
    ['2001:0:808:808::f7f7:f7f7', 'ipv6_transition'],
    ['::127.0.0.1', 'loopback'],
    ['::10.0.0.5', 'private'],
    ['::808:808', 'ipv4_compatible'],
  ])('judges the IPv4 address inside %s (%s)', (address, reason) => {
    expect(classify(address)).toBe(reason);
  });

  it.each(['8.8.8.8', '93.184.216.34', '1.1.1.1', '172.32.0.1', '100.128.0.1', '2606:4700::1111'])(
    'passes the public unicast address %s',
    (address) => {
      expect(classify(address)).toBeUndefined();
    },
  );

  it('passes a public IPv4 address in its mapped and NAT64 forms', () => {
    expect(classify('::ffff:8.8.8.8')).toBeUndefined();
    expect(classify('64:ff9b::8.8.8.8')).toBeUndefined();
  });

  it("refuses the host's own addresses, public ones too, in every spelling", () => {
    const withHost = createAddressClassifier({
      hostAddresses: ['8.8.4.4', '2606:4700::6810:85e5', '::ffff:9.9.9.9'],
    });
    expect(withHost('8.8.4.4')).toBe('host_address');
    expect(withHost('::ffff:8.8.4.4')).toBe('host_address');
    expect(withHost('2606:4700:0:0:0:0:6810:85e5')).toBe('host_address');
    expect(withHost('9.9.9.9')).toBe('host_address');
    expect(withHost('8.8.8.8')).toBeUndefined();
  });

  it("names the range of a host address that is not public (loopback, not the host's own)", () => {
    const withHost = createAddressClassifier({ hostAddresses: ['127.0.0.1', '10.1.1.1'] });
    expect(withHost('127.0.0.1')).toBe('loopback');
    expect(withHost('10.1.1.1')).toBe('private');
  });

  it('refuses the ranges the operator adds, and only those', () => {
    const withDenied = createAddressClassifier({
      hostAddresses: [],
      deniedCidrs: ['203.0.114.0/24', '2a00:1450::/32'],
    });
    expect(withDenied('203.0.114.9')).toBe('denied_range');
    expect(withDenied('::ffff:203.0.114.9')).toBe('denied_range');
    expect(withDenied('2a00:1450:4001::1')).toBe('denied_range');
    expect(withDenied('203.0.115.9')).toBeUndefined();
  });

  it('reads ::a.b.c.d as ipaddr.js does (IPv4-mapped), the form canonicalAddress connects to', () => {
    expect(classify('::8.8.8.8')).toBeUndefined();
    expect(canonicalAddress('::8.8.8.8')).toEqual({ address: '8.8.8.8', family: 4 });
    expect(canonicalAddress('::808:808')).toEqual({ address: '::808:808', family: 6 });
  });

  it('makes the address to connect to canonical: mapped forms as IPv4, odd IPv4 spellings read once', () => {
    expect(canonicalAddress('::ffff:127.0.0.1')).toEqual({ address: '127.0.0.1', family: 4 });
    expect(canonicalAddress('0:0:0:0:0:0:0:1')).toEqual({ address: '::1', family: 6 });
    expect(canonicalAddress('0x7f.1')).toEqual({ address: '127.0.0.1', family: 4 });
    expect(canonicalAddress('example.com')).toBeUndefined();
  });

  it('refuses what is not an address at all', () => {
    expect(classify('not-an-ip')).toBe('reserved');
  });

  it('throws at construction on an invalid host address or CIDR', () => {
    expect(() => createAddressClassifier({ hostAddresses: ['999.1.1.1'] })).toThrow(TypeError);
    expect(() => createAddressClassifier({ hostAddresses: [], deniedCidrs: ['10.0.0.0'] })).toThrow(
      TypeError,
    );
  });
});
