import {
  formatHostPattern,
  parseHostPattern,
  patternAdmits,
  patternCovers,
  type HostPattern,
} from './host-pattern.js';

/** A list of host patterns (see HostPattern); a host is admitted when any pattern admits it. */
export class HostAllowlist {
  private constructor(readonly patterns: readonly HostPattern[]) {}

  /** Admits every host. */
  static readonly ANY = new HostAllowlist([{ kind: 'any' }]);

  /**
   * Parses pattern texts. Returns the allowlist, or the texts that are not valid patterns
   * (all of them, so the caller can report every problem at once).
   */
  static parse(
    texts: readonly string[],
  ): { allowlist: HostAllowlist; invalid?: never } | { allowlist?: never; invalid: string[] } {
    const patterns: HostPattern[] = [];
    const invalid: string[] = [];
    for (const text of texts) {
      const pattern = parseHostPattern(text);
      if (pattern === undefined) invalid.push(text);
      else patterns.push(pattern);
    }
    return invalid.length > 0 ? { invalid } : { allowlist: new HostAllowlist(patterns) };
  }

  /** Whether a normalised host (see normalizeHost) is admitted. */
  admits(host: string): boolean {
    return this.patterns.some((p) => patternAdmits(p, host));
  }

  /** The patterns of this list that `ceiling` does not cover (empty: this list is within it). */
  outside(ceiling: HostAllowlist): string[] {
    return this.patterns
      .filter((p) => !ceiling.patterns.some((c) => patternCovers(c, p)))
      .map(formatHostPattern);
  }

  /** The patterns, normalised, as they would be written in configuration. */
  toStrings(): string[] {
    return this.patterns.map(formatHostPattern);
  }
}
