/**
 * `.dockerignore`, matched the way Docker's patternmatcher does: one pattern per line, `#`
 * comments, paths cleaned and relative to the context root (a leading `/` is dropped), `*` and
 * `?` within one path component, `**` across any number of them, `[...]` classes, `!` re-includes;
 * the last matching pattern wins, and a pattern that matches a directory matches everything below.
 *
 * Pure string work with no imports beyond node:path: the CLI uses it too (it must load no engine
 * code) to leave ignored files out of the context it sends, as the docker CLI does.
 */
import * as path from 'node:path';

interface Pattern {
  exclusion: boolean;
  re: RegExp;
  /** The cleaned pattern, for directory-skipping decisions. */
  text: string;
}

export class IgnoreMatcher {
  private readonly patterns: Pattern[];

  constructor(lines: string[]) {
    this.patterns = [];
    for (let raw of lines) {
      raw = raw.trim();
      if (!raw || raw.startsWith('#')) continue;
      let exclusion = false;
      if (raw.startsWith('!')) {
        exclusion = true;
        raw = raw.slice(1).trim();
      }
      let text = path.posix.normalize(raw.replace(/^\/+/, ''));
      if (text === '.' || text === '') continue;
      text = text.replace(/\/+$/, '');
      this.patterns.push({ exclusion, re: compile(text), text });
    }
  }

  static parse(content: string | undefined): IgnoreMatcher {
    return new IgnoreMatcher((content ?? '').split(/\r?\n/));
  }

  get empty(): boolean {
    return this.patterns.length === 0;
  }

  get hasExclusions(): boolean {
    return this.patterns.some((p) => p.exclusion);
  }

  /** Whether `rel` (a path relative to the context, `/`-separated) is left out of the context. */
  ignores(rel: string): boolean {
    const clean = path.posix
      .normalize(rel)
      .replace(/^\.?\/+/, '')
      .replace(/\/+$/, '');
    if (!clean || clean === '.') return false;
    const parents: string[] = [];
    const parts = clean.split('/');
    for (let i = 1; i < parts.length; i++) parents.push(parts.slice(0, i).join('/'));
    let matched = false;
    for (const p of this.patterns) {
      if (p.exclusion !== matched) continue; // only a pattern that could change the answer matters
      const hit = p.re.test(clean) || parents.some((d) => p.re.test(d));
      if (hit) matched = !p.exclusion;
    }
    return matched;
  }

  /**
   * Whether a directory that is itself ignored may still hold re-included files (a `!` pattern
   * that reaches below it), so a walker must still look inside.
   */
  mayReincludeBelow(dir: string): boolean {
    return this.patterns.some((p) => p.exclusion && (p.text.startsWith(dir + '/') || p.text.includes('*') || p.text.includes('?') || p.text.includes('[')));
  }
}

/** A Go filepath.Match-style pattern (plus `**`) as an anchored regex. */
function compile(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*') {
      if (pattern[i + 1] === '*') {
        i++;
        // `**/` matches zero or more directories; a trailing `**` matches everything.
        if (pattern[i + 1] === '/') {
          i++;
          re += '(?:.*/)?';
        } else re += '.*';
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 1);
      if (end < 0) {
        re += '\\[';
        continue;
      }
      let cls = pattern.slice(i + 1, end);
      if (cls.startsWith('^') || cls.startsWith('!')) cls = '^' + cls.slice(1);
      re += `[${cls.replace(/\\/g, '\\\\')}]`;
      i = end;
    } else if (c === '\\' && i + 1 < pattern.length) {
      re += escapeChar(pattern[++i]);
    } else re += escapeChar(c);
  }
  return new RegExp(`^${re}$`);
}

function escapeChar(c: string): string {
  return /[.*+?^${}()|[\]\\/]/.test(c) ? `\\${c}` : c;
}
