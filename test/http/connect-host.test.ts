import { describe, expect, it } from 'vitest';
import { connectHost } from '../../src/http/connect-host.js';

describe('connectHost', () => {
  it('dials the IPv4 loopback for the IPv4 wildcard', () => {
    expect(connectHost('0.0.0.0')).toBe('127.0.0.1');
  });

  it('dials the IPv6 loopback for the IPv6 wildcard', () => {
    expect(connectHost('::')).toBe('::1');
  });

  it('dials a specific address as it is', () => {
    expect(connectHost('127.0.0.1')).toBe('127.0.0.1');
    expect(connectHost('::1')).toBe('::1');
    expect(connectHost('192.0.2.7')).toBe('192.0.2.7');
  });
});
