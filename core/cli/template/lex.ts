/**
 * The lexer of Go's text/template: text outside actions, and inside `{{ }}` (with `{{-`/`-}}`
 * trim markers and comments) fields, variables, identifiers, literals and punctuation.
 */
import { TemplateError, lineOf } from './errors';

export type Token =
  | { t: 'text'; text: string; pos: number }
  | { t: 'open'; pos: number }
  | { t: 'close'; pos: number }
  | { t: 'space' | 'pipe' | 'lparen' | 'rparen' | 'declare' | 'assign' | 'comma' | 'eof'; pos: number }
  | { t: 'field'; text: string; pos: number }
  | { t: 'var'; text: string; pos: number }
  | { t: 'ident'; text: string; pos: number }
  | { t: 'dot'; pos: number }
  | { t: 'string'; value: string; pos: number }
  | { t: 'number'; value: number; text: string; pos: number }
  | { t: 'bool'; value: boolean; pos: number }
  | { t: 'nil'; pos: number };

export const KEYWORDS = new Set(['if', 'else', 'end', 'range', 'with', 'define', 'template', 'block', 'break', 'continue']);
const SPACE = /[ \t\r\n]/;

export function lex(src: string): Token[] {
  const out: Token[] = [];
  const fail = (pos: number, msg: string): never => {
    throw new TemplateError(`template: :${lineOf(src, pos)}: ${msg}`);
  };
  let i = 0;
  let trimNext = false;
  while (i < src.length) {
    const open = src.indexOf('{{', i);
    let text = open < 0 ? src.slice(i) : src.slice(i, open);
    const leftTrim = open >= 0 && src[open + 2] === '-' && SPACE.test(src[open + 3] ?? '');
    if (trimNext) text = text.replace(/^[ \t\r\n]+/, '');
    if (leftTrim) text = text.replace(/[ \t\r\n]+$/, '');
    trimNext = false;
    if (text) out.push({ t: 'text', text, pos: i });
    if (open < 0) break;
    i = open + 2 + (leftTrim ? 2 : 0);
    // A comment takes the whole action: {{/* ... */}}, trim markers allowed around it.
    if (src.startsWith('/*', i)) {
      const end = src.indexOf('*/', i + 2);
      if (end < 0) fail(i, 'unclosed comment');
      let j = end + 2;
      if (src.startsWith(' -}}', j) || src.startsWith('\t-}}', j) || src.startsWith('\n-}}', j)) {
        trimNext = true;
        j += 4;
      } else if (src.startsWith('}}', j)) j += 2;
      else fail(j, 'comment ends before closing delimiter');
      i = j;
      continue;
    }
    out.push({ t: 'open', pos: open });
    let depth = 0;
    for (;;) {
      if (i >= src.length) fail(open, 'unclosed action');
      const c = src[i];
      if (SPACE.test(c)) {
        // " -}}" closes with a right trim marker.
        let j = i;
        while (j < src.length && SPACE.test(src[j])) j++;
        if (src.startsWith('-}}', j)) {
          if (depth) fail(j, 'unclosed left paren');
          out.push({ t: 'close', pos: j });
          trimNext = true;
          i = j + 3;
          break;
        }
        out.push({ t: 'space', pos: i });
        i = j;
        continue;
      }
      if (src.startsWith('}}', i)) {
        if (depth) fail(i, 'unclosed left paren');
        out.push({ t: 'close', pos: i });
        i += 2;
        break;
      }
      if (c === '|') out.push({ t: 'pipe', pos: i++ });
      else if (c === '(') {
        depth++;
        out.push({ t: 'lparen', pos: i++ });
      } else if (c === ')') {
        if (!depth) fail(i, `unexpected right paren`);
        depth--;
        out.push({ t: 'rparen', pos: i++ });
      } else if (c === ',') out.push({ t: 'comma', pos: i++ });
      else if (src.startsWith(':=', i)) {
        out.push({ t: 'declare', pos: i });
        i += 2;
      } else if (c === '=') out.push({ t: 'assign', pos: i++ });
      else if (c === '"') {
        let j = i + 1;
        while (j < src.length && src[j] !== '"') {
          if (src[j] === '\\') j++;
          if (src[j] === '\n') fail(i, 'unterminated quoted string');
          j++;
        }
        if (j >= src.length) fail(i, 'unterminated quoted string');
        out.push({ t: 'string', value: unquote(src.slice(i + 1, j), () => fail(i, `invalid syntax: ${src.slice(i, j + 1)}`)), pos: i });
        i = j + 1;
      } else if (c === '`') {
        const j = src.indexOf('`', i + 1);
        if (j < 0) fail(i, 'unterminated raw quoted string');
        out.push({ t: 'string', value: src.slice(i + 1, j), pos: i });
        i = j + 1;
      } else if (c === "'") {
        const m = /^'(\\.|\\x[0-9a-fA-F]{2}|\\u[0-9a-fA-F]{4}|[^\\'])'/u.exec(src.slice(i));
        if (!m) fail(i, 'unterminated character constant');
        const ch = unquote(m![1], () => fail(i, 'invalid character constant'));
        out.push({ t: 'number', value: ch.codePointAt(0)!, text: m![0], pos: i });
        i += m![0].length;
      } else if (c === '.' && !/[0-9]/.test(src[i + 1] ?? '')) {
        const m = /^\.[A-Za-z_][A-Za-z0-9_]*/.exec(src.slice(i));
        if (m) {
          out.push({ t: 'field', text: m[0].slice(1), pos: i });
          i += m[0].length;
        } else out.push({ t: 'dot', pos: i++ });
      } else if (c === '$') {
        const m = /^\$[A-Za-z0-9_]*/.exec(src.slice(i))!;
        out.push({ t: 'var', text: m[0], pos: i });
        i += m[0].length;
      } else if (/[-+0-9.]/.test(c)) {
        const m = /^[-+]?(0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|(\d[\d_]*)?\.?\d*([eE][-+]?\d+)?)/.exec(src.slice(i));
        const text = m?.[0] ?? '';
        if (!text || text === '-' || text === '+' || /[A-Za-z_]/.test(src[i + text.length] ?? '')) fail(i, `bad number syntax: "${src.slice(i, i + Math.max(1, text.length + 1))}"`);
        const clean = text.replace(/_/g, '');
        const neg = clean.startsWith('-');
        const body = clean.replace(/^[-+]/, '');
        const value = /^0[bB]/.test(body)
          ? parseInt(body.slice(2), 2)
          : /^0[oO]/.test(body)
            ? parseInt(body.slice(2), 8)
            : /^0[xX]/.test(body)
              ? parseInt(body.slice(2), 16)
              : /^0\d+$/.test(body)
                ? parseInt(body, 8)
                : Number(body);
        if (Number.isNaN(value)) fail(i, `bad number syntax: "${text}"`);
        out.push({ t: 'number', value: neg ? -value : value, text, pos: i });
        i += text.length;
      } else if (/[A-Za-z_]/.test(c)) {
        const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(src.slice(i))!;
        const w = m[0];
        if (w === 'true' || w === 'false') out.push({ t: 'bool', value: w === 'true', pos: i });
        else if (w === 'nil') out.push({ t: 'nil', pos: i });
        else out.push({ t: 'ident', text: w, pos: i });
        i += w.length;
      } else fail(i, `unexpected "${c}" in ${depth ? 'operand' : 'command'}`);
    }
  }
  out.push({ t: 'eof', pos: src.length });
  return out;
}

/** Go's interpreted string literal escapes. */
export function unquote(s: string, bad: () => never): string {
  return s.replace(/\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|.)/g, (_, e: string) => {
    const simple: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', '"': '"', "'": "'", a: '\x07', b: '\b', f: '\f', v: '\v' };
    if (e in simple) return simple[e];
    if (/^[xuU]/.test(e)) return String.fromCodePoint(parseInt(e.slice(1), 16));
    if (/^[0-7]{3}$/.test(e)) return String.fromCharCode(parseInt(e, 8));
    return bad();
  });
}
