/**
 * The small shell-like lexer Dockerfiles use, in the order Docker applies it: an instruction's
 * arguments are split into raw words (quotes kept), then each word is processed on its own:
 * variables substituted (`$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR:+alt}`, `${VAR-default}`,
 * `${VAR+alt}`, `${VAR:?message}`) and quotes and escapes removed. A substituted value is never
 * split again. Single quotes stop substitution; the escape character (`\`, or the one the
 * `# escape=` directive chose) makes the next character literal.
 */
import { InvalidArgumentError } from '../contracts/errors';

export type Lookup = (name: string) => string | undefined;

const NAME_START = /[A-Za-z_]/;
const NAME_CHAR = /[A-Za-z0-9_]/;

/**
 * Split on unquoted whitespace; quotes and escapes stay in the words so processWord sees them.
 * `a=b "c d"=e` -> [`a=b`, `"c d"=e`].
 */
export function rawWords(text: string, escape = '\\'): string[] {
  const words: string[] = [];
  let cur = '';
  let quote: string | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === escape && quote === '"' && i + 1 < text.length) {
        cur += c + text[++i];
        continue;
      }
      if (c === quote) quote = null;
      cur += c;
    } else if (c === escape && i + 1 < text.length) {
      cur += c + text[++i];
    } else if (c === '"' || c === "'") {
      quote = c;
      cur += c;
    } else if (/\s/.test(c)) {
      if (cur) words.push(cur);
      cur = '';
    } else cur += c;
  }
  if (quote) throw new InvalidArgumentError(`unterminated quote in ${JSON.stringify(text)}`);
  if (cur) words.push(cur);
  return words;
}

/**
 * Substitute variables and remove quotes and escapes in one word (whitespace, if any, is kept).
 * `lookup` null means no substitution at all (quote removal only). `what` names the instruction
 * in errors.
 */
export function processWord(text: string, lookup: Lookup | null, escape = '\\', what = 'instruction'): string {
  let out = '';
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote === "'") {
      if (c === "'") quote = null;
      else out += c;
      continue;
    }
    if (c === escape && i + 1 < text.length) {
      const next = text[i + 1];
      // Inside double quotes only the quote, the escape and `$` are escapable (as in sh).
      if (quote === '"' && !['"', escape, '$'].includes(next)) out += c + next;
      else out += next;
      i++;
      continue;
    }
    if (c === '"') {
      quote = quote ? null : '"';
      continue;
    }
    if (c === "'" && !quote) {
      quote = "'";
      continue;
    }
    if (c !== '$' || !lookup) {
      out += c;
      continue;
    }
    const [value, end] = readVariable(text, i, lookup, escape, what);
    out += value;
    i = end - 1;
  }
  if (quote) throw new InvalidArgumentError(`${what}: unterminated quote in ${JSON.stringify(text)}`);
  return out;
}

/** Each raw word processed: what COPY, EXPOSE, VOLUME and FROM see. */
export function processWords(text: string, lookup: Lookup | null, escape = '\\', what = 'instruction'): string[] {
  return rawWords(text, escape).map((w) => processWord(w, lookup, escape, what));
}

/** Reads a `$...` reference starting at `start`; returns its value and the index after it. */
function readVariable(text: string, start: number, lookup: Lookup, escape: string, what: string): [string, number] {
  const next = text[start + 1];
  if (next === '{') {
    let depth = 1;
    let j = start + 2;
    for (; j < text.length && depth; j++) {
      if (text[j] === escape) j++;
      else if (text[j] === '{') depth++;
      else if (text[j] === '}') depth--;
    }
    if (depth) throw new InvalidArgumentError(`${what}: missing '}' in ${JSON.stringify(text.slice(start))}`);
    return [braced(text.slice(start + 2, j - 1), lookup, escape, what), j];
  }
  if (next !== undefined && NAME_START.test(next)) {
    let j = start + 1;
    while (j < text.length && NAME_CHAR.test(text[j])) j++;
    return [lookup(text.slice(start + 1, j)) ?? '', j];
  }
  // A lone `$` (end of text, `$ `, `$1` ...) stays as it is, as in Docker.
  return ['$', start + 1];
}

function braced(body: string, lookup: Lookup, escape: string, what: string): string {
  const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-+?])([\s\S]*))?$/.exec(body);
  if (!m) throw new InvalidArgumentError(`${what}: bad substitution: \${${body}}`);
  const [, name, op, word = ''] = m;
  const value = lookup(name);
  if (!op) return value ?? '';
  // With a colon an empty value counts as unset (POSIX).
  const set = op.startsWith(':') ? value !== undefined && value !== '' : value !== undefined;
  const kind = op[op.length - 1];
  const wordValue = () => processWord(word, lookup, escape, what);
  if (kind === '-') return set ? value! : wordValue();
  if (kind === '+') return set ? wordValue() : '';
  if (!set) throw new InvalidArgumentError(`${what}: ${name}: ${wordValue() || 'parameter not set'}`);
  return value!;
}

/**
 * `k=v k2="v 2"` or the legacy `k v with spaces` (a single pair) of ENV and LABEL, processed
 * (substituted and unquoted) key by key and value by value.
 */
export function keyValuePairs(text: string, lookup: Lookup | null, escape: string, what: string): [string, string][] {
  const trimmed = text.trim();
  if (!trimmed) throw new InvalidArgumentError(`${what} requires at least one argument`);
  const words = rawWords(trimmed, escape);
  if (!words[0].includes('=')) {
    const value = trimmed.slice(trimmed.indexOf(words[0]) + words[0].length).trim();
    if (!value) throw new InvalidArgumentError(`${what} names ${words[0]} but gives it no value`);
    return [[processWord(words[0], lookup, escape, what), processWord(value, lookup, escape, what)]];
  }
  return words.map((w) => {
    const eq = w.indexOf('=');
    if (eq <= 0) throw new InvalidArgumentError(`${what}: ${JSON.stringify(w)} is not KEY=VALUE`);
    return [processWord(w.slice(0, eq), lookup, escape, what), processWord(w.slice(eq + 1), lookup, escape, what)];
  });
}
