import { describe, expect, it } from 'vitest';
import { endToEndHeaders, forwardedRequestHeaders } from '../../src/egress/forwarded-headers.js';
import { parseConnectTarget, type ProxyTarget } from '../../src/egress/proxy-target.js';

function target(authority: string): ProxyTarget {
  const parsed = parseConnectTarget(authority);
  if (parsed.target === undefined) throw new Error(parsed.error);
  return parsed.target;
}

describe('endToEndHeaders', () => {
  it('drops hop-by-hop fields and those the Connection field names, keeps repeats', () => {
    expect(
      endToEndHeaders([
        'Accept',
        'text/plain',
        'Connection',
        'keep-alive, X-Secret',
        'X-Secret',
        'no',
        'Keep-Alive',
        'timeout=5',
        'Transfer-Encoding',
        'chunked',
        'Proxy-Authorization',
        'Basic eA==',
        'Set-Cookie',
        'a=1',
        'set-cookie',
        'b=2',
        'TE',
        'trailers',
        'Upgrade',
        'h2c',
        'Expect',
        '100-continue',
      ]),
    ).toEqual({ accept: 'text/plain', 'set-cookie': ['a=1', 'b=2'] });
  });
});

describe('forwardedRequestHeaders', () => {
  it('sets Host to the judged target and asks for one request per connection', () => {
    expect(forwardedRequestHeaders(['Host', 'elsewhere.example'], target('a.example:80'))).toEqual({
      host: 'a.example',
      connection: 'close',
    });
    expect(forwardedRequestHeaders([], target('a.example:8080')).host).toBe('a.example:8080');
    expect(forwardedRequestHeaders([], target('[::1]:8080')).host).toBe('[::1]:8080');
  });
});
