/**
 * The external base images a Dockerfile names in its FROM lines, in order, without `scratch`
 * and without references to earlier stages. Global ARGs (before the first FROM) and build
 * args are substituted (`$NAME`, `${NAME}`, `${NAME:-default}`), as the Dockerfile frontend
 * does for FROM.
 */
export function dockerfileBaseImages(text: string, buildArgs: Record<string, string>): string[] {
  const lines = logicalLines(text);
  const args = new Map<string, string>();
  const stages = new Set<string>();
  const out: string[] = [];
  let seenFrom = false;
  for (const line of lines) {
    const m = /^(\w+)\s+(.*)$/s.exec(line);
    if (!m) continue;
    const instr = (m[1] ?? '').toUpperCase();
    const rest = (m[2] ?? '').trim();
    if (instr === 'ARG' && !seenFrom) {
      for (const decl of rest.split(/\s+/)) {
        const eq = decl.indexOf('=');
        const name = eq === -1 ? decl : decl.slice(0, eq);
        const def = eq === -1 ? undefined : unquote(decl.slice(eq + 1));
        const value = buildArgs[name] ?? def;
        if (value !== undefined) args.set(name, value);
      }
      continue;
    }
    if (instr !== 'FROM') continue;
    seenFrom = true;
    const words = rest.split(/\s+/).filter((w) => !w.startsWith('--'));
    const image = substitute(words[0] ?? '', args);
    const isEarlierStage = stages.has(image.toLowerCase());
    if (words.length >= 3 && (words[1] ?? '').toLowerCase() === 'as') {
      stages.add((words[2] ?? '').toLowerCase());
    }
    if (image === '' || image.toLowerCase() === 'scratch' || isEarlierStage) continue;
    if (!out.includes(image)) out.push(image);
  }
  return out;
}

function logicalLines(text: string): string[] {
  const out: string[] = [];
  let current = '';
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (current === '' && (line.startsWith('#') || line === '')) continue;
    if (line.startsWith('#')) continue;
    if (line.endsWith('\\')) {
      current += `${line.slice(0, -1)} `;
      continue;
    }
    out.push(current + line);
    current = '';
  }
  if (current !== '') out.push(current);
  return out;
}

function unquote(v: string): string {
  return /^".*"$|^'.*'$/.test(v) ? v.slice(1, -1) : v;
}

function substitute(word: string, args: Map<string, string>): string {
  return word.replace(
    /\$\{(\w+)(?::-([^}]*))?\}|\$(\w+)/g,
    (_m, braced: string | undefined, def: string | undefined, bare: string | undefined) => {
      const name = braced ?? bare ?? '';
      const value = args.get(name);
      if (value !== undefined && value !== '') return value;
      return def ?? '';
    },
  );
}
