/**
 * The functions templates can call: text/template's builtins (eq, index, len, printf ...), Docker's
 * (json, join, title, truncate ...) and the header variants docker's table headings use.
 */
import { STRUCT, type Value, goType, sprint, sprintf, sprintln } from './fmt';

export type TemplateFunc = (...args: Value[]) => Value;

/** Go's truth: false, 0, nil, empty strings, slices and maps are false. */
export function truth(v: Value): boolean {
  if (v === null || v === undefined) return false;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number') return v !== 0;
  if (typeof v === 'string' || Array.isArray(v)) return v.length > 0;
  if (typeof v === 'function') return true;
  if ((v as { [STRUCT]?: string })[STRUCT]) return true;
  return Object.keys(v as object).length > 0;
}

export function isMap(v: Value): v is Record<string, Value> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v as { [STRUCT]?: string })[STRUCT];
}

function basicKind(v: Value): string {
  if (v === null || v === undefined) return 'nil';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'float';
  if (typeof v === 'string' || typeof v === 'boolean') return typeof v;
  return 'composite';
}

function eqPair(a: Value, b: Value): boolean {
  const ka = basicKind(a);
  const kb = basicKind(b);
  if (ka === 'composite' || kb === 'composite') {
    if (ka === 'nil' || kb === 'nil') return false;
    throw new Error('non-comparable type');
  }
  if (ka === 'nil' || kb === 'nil') return ka === kb;
  // An integral and a fractional number are both numbers in JSON.
  const numeric = (k: string) => k === 'int' || k === 'float';
  if (ka !== kb && !(numeric(ka) && numeric(kb))) throw new Error('incompatible types for comparison');
  return a === b;
}

function ordered(a: Value, b: Value): number {
  const ka = basicKind(a);
  const kb = basicKind(b);
  const numeric = (k: string) => k === 'int' || k === 'float';
  if ((numeric(ka) && numeric(kb)) || (ka === 'string' && kb === 'string')) return (a as number) < (b as number) ? -1 : a === b ? 0 : 1;
  if (ka === 'composite' || kb === 'composite' || ka === 'nil' || kb === 'nil' || ka === 'bool' || kb === 'bool') throw new Error('invalid type for comparison');
  throw new Error('incompatible types for comparison');
}

function toInt(v: Value, what: string): number {
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  throw new Error(`cannot index slice/array with type ${goType(v)}`.replace('slice/array', what));
}

function indexOne(item: Value, key: Value): Value {
  if (Array.isArray(item) || typeof item === 'string') {
    const i = toInt(key, 'slice/array');
    if (i < 0 || i >= item.length) throw new Error(`index out of range: ${i}`);
    return typeof item === 'string' ? item.charCodeAt(i) : item[i];
  }
  if (isMap(item)) {
    if (typeof key !== 'string') throw new Error(`value has type ${goType(key)}; should be string`);
    if (key in item) return item[key];
    // A map of strings (labels, options) gives "" for a missing key, as Go's map[string]string does.
    return Object.values(item).every((x) => typeof x === 'string') ? '' : undefined;
  }
  if (item === null || item === undefined) throw new Error('index of untyped nil');
  throw new Error(`can't index item of type ${goType(item)}`);
}

function str(v: Value, fn: string): string {
  if (typeof v === 'string') return v;
  throw new Error(`wrong type for value; expected string; got ${goType(v)}`.replace('value', `value of ${fn}`));
}

function int(v: Value, fn: string): number {
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  throw new Error(`wrong type for value of ${fn}; expected int; got ${goType(v)}`);
}

/** Go's strings.Title: upper-case the letter after each separator (isSeparator's rules). */
function title(s: string): string {
  const separator = (ch: string) => (ch.charCodeAt(0) <= 0x7f ? !/[A-Za-z0-9_]/.test(ch) : !/[\p{L}\p{N}]/u.test(ch) && /\s/u.test(ch));
  let prev = ' ';
  let out = '';
  for (const ch of s) {
    out += separator(prev) ? ch.toUpperCase() : ch;
    prev = ch;
  }
  return out;
}

function htmlEscape(s: string): string {
  return s.replace(/[&'<>"\0]/g, (c) => ({ '&': '&amp;', "'": '&#39;', '<': '&lt;', '>': '&gt;', '"': '&#34;', '\0': '\uFFFD' })[c]!);
}

function jsEscape(s: string): string {
  return s.replace(/[\\'"<>&=\n\r\t]|[\x00-\x1f]/g, (c) => {
    const named: Record<string, string> = { '\\': '\\\\', "'": "\\'", '"': '\\"', '\n': '\\n', '\r': '\\r', '\t': '\\t' };
    return named[c] ?? `\\u${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`;
  });
}

/**
 * Go's json.Marshal as docker's `json` function calls it: HTML left unescaped, null for nil, and
 * map keys sorted. The API's JSON keeps struct fields in order; an object whose keys are not all
 * exported (capitalised) field names is a Go map (labels, networks, ports), so its keys are sorted.
 */
export function goJson(v: Value): string {
  const sortMaps = (_k: string, x: Value) => {
    if (!isMap(x)) return x;
    const keys = Object.keys(x);
    if (keys.every((k) => /^[A-Z]/.test(k))) return x;
    return Object.fromEntries(keys.sort().map((k) => [k, x[k]]));
  };
  return JSON.stringify(v === undefined ? null : v, sortMaps) ?? 'null';
}

/** text/template's builtins (and/or are lazy and live in the evaluator). */
export const BUILTINS: Record<string, TemplateFunc> = {
  not: (v) => !truth(v),
  len: (v) => {
    if (typeof v === 'string') return Buffer.byteLength(v);
    if (Array.isArray(v)) return v.length;
    if (isMap(v)) return Object.keys(v).length;
    throw new Error(`len of ${v === null || v === undefined ? 'nil pointer' : `type ${goType(v)}`}`);
  },
  index: (item, ...keys) => keys.reduce((acc, k) => indexOne(acc, k), item),
  slice: (item, ...idx) => {
    if (typeof item !== 'string' && !Array.isArray(item)) throw new Error(`can't slice item of type ${goType(item)}`);
    const [from = 0, to = item.length] = idx.map((i) => toInt(i, 'slice'));
    if (from < 0 || to > item.length || from > to) throw new Error(`index out of range: ${from > to ? from : to}`);
    return item.slice(from, to);
  },
  print: (...a) => sprint(a),
  printf: (f, ...a) => sprintf(str(f, 'printf'), a),
  println: (...a) => sprintln(a),
  eq: (a, ...bs) => {
    if (!bs.length) throw new Error('missing argument for comparison');
    return bs.some((b) => eqPair(a, b));
  },
  ne: (a, b) => !eqPair(a, b),
  lt: (a, b) => ordered(a, b) < 0,
  le: (a, b) => ordered(a, b) <= 0,
  gt: (a, b) => ordered(a, b) > 0,
  ge: (a, b) => ordered(a, b) >= 0,
  html: (...a) => htmlEscape(sprint(a)),
  js: (...a) => jsEscape(sprint(a)),
  urlquery: (...a) =>
    encodeURIComponent(sprint(a))
      .replace(/%20/g, '+')
      .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`),
  call: (fn, ...a) => {
    if (typeof fn !== 'function') throw new Error(`non-function of type ${goType(fn)}`);
    return (fn as TemplateFunc)(...a);
  },
};

/** Docker's template functions (cli/templates): json split join title lower upper pad truncate. */
export const DOCKER_FUNCS: Record<string, TemplateFunc> = {
  json: goJson,
  split: (s, sep) => str(s, 'split').split(str(sep, 'split')),
  join: (list, sep) => {
    if (!Array.isArray(list)) throw new Error(`wrong type for value of join; expected []string; got ${goType(list)}`);
    return list.map((e) => str(e, 'join')).join(str(sep, 'join'));
  },
  title: (s) => title(str(s, 'title')),
  lower: (s) => str(s, 'lower').toLowerCase(),
  upper: (s) => str(s, 'upper').toUpperCase(),
  pad: (s, prefix, suffix) => {
    const src = str(s, 'pad');
    return src ? ' '.repeat(int(prefix, 'pad')) + src + ' '.repeat(int(suffix, 'pad')) : src;
  },
  truncate: (s, n) => {
    const src = str(s, 'truncate');
    const len = int(n, 'truncate');
    return src.length < len ? src : src.slice(0, len);
  },
};

/** Docker's header functions: every function hands back the header text it was given. */
export const HEADER_FUNCS: Record<string, TemplateFunc> = Object.fromEntries(Object.keys(DOCKER_FUNCS).map((k) => [k, (v: Value) => v]));
