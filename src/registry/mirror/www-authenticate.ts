/** One challenge of a `WWW-Authenticate` header: its scheme and auth-params. */
export interface AuthChallenge {
  /** Lowercased: `bearer`, `basic`, … */
  scheme: string;
  /** Parameter names lowercased; quoted values unescaped. */
  params: Record<string, string>;
}

/**
 * Parses a `WWW-Authenticate` value (RFC 9110 §11.6.1, challenge = auth-scheme [ 1*SP (
 * token68 / #auth-param ) ]) into its challenges, e.g. Docker's `Bearer
 * realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:…:pull"`.
 * Several challenges may share one header, separated by commas; a token68 is ignored.
 */
export function parseWwwAuthenticate(header: string): AuthChallenge[] {
  const out: AuthChallenge[] = [];
  let i = 0;
  const n = header.length;
  const skipSpace = () => {
    while (i < n && (header[i] === ' ' || header[i] === '\t')) i++;
  };
  const readToken = () => {
    const start = i;
    while (i < n && /[!#$%&'*+.^_`|~0-9A-Za-z-]/.test(header[i] ?? '')) i++;
    return header.slice(start, i);
  };
  let current: AuthChallenge | null = null;
  while (i < n) {
    skipSpace();
    if (header[i] === ',') {
      i++;
      continue;
    }
    const token = readToken();
    if (token === '') {
      i++;
      continue;
    }
    skipSpace();
    if (header[i] === '=' && current !== null && header[i + 1] !== '=') {
      // An auth-param of the current challenge.
      i++;
      skipSpace();
      let value = '';
      if (header[i] === '"') {
        i++;
        while (i < n && header[i] !== '"') {
          if (header[i] === '\\' && i + 1 < n) i++;
          value += header[i] ?? '';
          i++;
        }
        i++;
      } else {
        value = readToken();
      }
      current.params[token.toLowerCase()] = value;
      continue;
    }
    if (header[i] === '=' && current !== null) {
      // A token68 (base64 with padding): not used by registries.
      while (i < n && header[i] !== ',') i++;
      continue;
    }
    current = { scheme: token.toLowerCase(), params: {} };
    out.push(current);
  }
  return out;
}
