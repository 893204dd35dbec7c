/** Environment lists (`KEY=value`) as Docker merges them. */

/**
 * Image env first, then the request's, a later KEY replacing an earlier one in place. A bare
 * `KEY` (no `=`) unsets KEY for the process; Docker keeps it as given in Config.Env (`keepUnset`).
 */
export function mergeEnv(base: string[], extra: string[], opts: { keepUnset?: boolean } = {}): string[] {
  const out = new Map<string, string>();
  for (const e of [...base, ...extra]) {
    const i = e.indexOf('=');
    out.set(i < 0 ? e : e.slice(0, i), e);
  }
  return [...out.values()].filter((e) => opts.keepUnset || e.includes('='));
}
