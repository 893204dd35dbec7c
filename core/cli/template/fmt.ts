/**
 * The parts of Go's fmt that templates reach: %v printing of JSON-shaped values (maps with sorted
 * keys, slices in brackets), Sprint/Sprintln spacing, and Sprintf's verbs, flags, width and precision.
 * Integral numbers print as Go ints (the typed structs docker formats hold ints), others as float64.
 */

/** Values a template works on: JSON plus struct-like contexts (see template/exec.ts). */
export type Value = unknown;

/** Go's %T for a JSON-shaped value. */
export function goType(v: Value): string {
  if (v === null || v === undefined) return '<nil>';
  if (typeof v === 'string') return 'string';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'float64';
  if (Array.isArray(v)) return '[]interface {}';
  if (typeof v === 'function') return 'func';
  const named = (v as { [STRUCT]?: string })[STRUCT];
  return named ?? 'map[string]interface {}';
}

/** Marks an object as a struct (missing fields are errors, not `<no value>`) and names its type. */
export const STRUCT = Symbol.for('berth.template.struct');

function formatFloat(n: number, verb: string, prec: number | undefined): string {
  if (!Number.isFinite(n)) return Number.isNaN(n) ? 'NaN' : n > 0 ? '+Inf' : '-Inf';
  switch (verb) {
    case 'f':
    case 'F':
      return n.toFixed(prec ?? 6);
    case 'e':
    case 'E': {
      const s = n.toExponential(prec ?? 6).replace(/e([+-])(\d)$/, 'e$10$2');
      return verb === 'E' ? s.toUpperCase() : s;
    }
    default: {
      // %g / %v: the shortest representation, exponent past 21 digits as Go does for float64.
      if (prec !== undefined) return Number(n.toPrecision(prec || 1)).toString();
      const abs = Math.abs(n);
      if (abs !== 0 && (abs < 1e-4 || abs >= 1e21)) {
        return n.toExponential().replace(/e([+-])(\d)$/, 'e$10$2');
      }
      return String(n);
    }
  }
}

/** fmt's %v of a value (nested strings unquoted). */
export function printValue(v: Value): string {
  if (v === undefined) return '<no value>';
  if (v === null) return '<nil>';
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : formatFloat(v, 'v', undefined);
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (Array.isArray(v)) return `[${v.map((e) => (e === undefined ? '<nil>' : printValue(e))).join(' ')}]`;
  if (typeof v === 'function') return '<func>';
  const obj = v as Record<string, Value>;
  if ((obj as { [STRUCT]?: string })[STRUCT]) {
    const plain = typeof (obj as { toJSON?: () => unknown }).toJSON === 'function' ? (obj as { toJSON: () => Record<string, Value> }).toJSON() : obj;
    return `{${Object.values(plain).map(printValue).join(' ')}}`;
  }
  const keys = Object.keys(obj).sort();
  return `map[${keys.map((k) => `${k}:${printValue(obj[k])}`).join(' ')}]`;
}

/** fmt.Sprint: spaces between operands when neither side is a string. */
export function sprint(args: Value[]): string {
  let out = '';
  args.forEach((a, i) => {
    if (i > 0 && typeof a !== 'string' && typeof args[i - 1] !== 'string') out += ' ';
    out += printValue(a);
  });
  return out;
}

export function sprintln(args: Value[]): string {
  return args.map(printValue).join(' ') + '\n';
}

/** strconv.Quote: Go's double-quoted string with escapes. */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\x07') out += '\\a';
    else if (ch === '\b') out += '\\b';
    else if (ch === '\f') out += '\\f';
    else if (ch === '\v') out += '\\v';
    else if (c < 0x20 || c === 0x7f) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return out + '"';
}

function pad(s: string, width: number | undefined, minus: boolean, zero: boolean): string {
  const len = [...s].length;
  if (width === undefined || len >= width) return s;
  if (minus) return s + ' '.repeat(width - len);
  if (zero) {
    const sign = /^[-+]/.test(s) ? s[0] : '';
    return sign + '0'.repeat(width - len) + s.slice(sign.length);
  }
  return ' '.repeat(width - len) + s;
}

function bad(verb: string, v: Value): string {
  return `%!${verb}(${goType(v)}=${printValue(v)})`;
}

/** fmt.Sprintf with Go's verbs: v s q d x X o b c t f F e E g G T %, flags -+# 0 and space. */
export function sprintf(format: string, args: Value[]): string {
  let out = '';
  let argi = 0;
  let i = 0;
  while (i < format.length) {
    const c = format[i];
    if (c !== '%') {
      out += c;
      i++;
      continue;
    }
    i++;
    let minus = false;
    let plus = false;
    let sharp = false;
    let zero = false;
    let space = false;
    for (; i < format.length; i++) {
      const f = format[i];
      if (f === '-') minus = true;
      else if (f === '+') plus = true;
      else if (f === '#') sharp = true;
      else if (f === '0') zero = !minus;
      else if (f === ' ') space = true;
      else break;
    }
    let width: number | undefined;
    let prec: number | undefined;
    const num = () => {
      if (format[i] === '*') {
        i++;
        const a = args[argi++];
        return typeof a === 'number' ? a : undefined;
      }
      const m = /^\d+/.exec(format.slice(i));
      if (!m) return undefined;
      i += m[0].length;
      return Number(m[0]);
    };
    width = num();
    if (format[i] === '.') {
      i++;
      prec = num() ?? 0;
    }
    const verb = format[i++];
    if (verb === undefined) {
      out += '%!(NOVERB)';
      break;
    }
    if (verb === '%') {
      out += '%';
      continue;
    }
    if (argi >= args.length) {
      out += `%!${verb}(MISSING)`;
      continue;
    }
    const v = args[argi++];
    let s: string;
    const sign = (n: number, body: string) => (n < 0 ? '-' : plus ? '+' : space ? ' ' : '') + body;
    switch (verb) {
      case 'v':
        s =
          typeof v === 'number' && !Number.isInteger(v)
            ? sign(v, formatFloat(Math.abs(v), 'g', prec))
            : typeof v === 'number' && plus && v >= 0
              ? `+${v}`
              : sharp && typeof v === 'string'
                ? goQuote(v)
                : printValue(v);
        break;
      case 's':
        if (typeof v === 'string') s = prec !== undefined ? [...v].slice(0, prec).join('') : v;
        else if (Array.isArray(v) && v.every((e) => typeof e === 'string')) s = printValue(v);
        else s = bad(verb, v);
        break;
      case 'q':
        s =
          typeof v === 'string'
            ? goQuote(v)
            : typeof v === 'number' && Number.isInteger(v)
              ? `'${String.fromCodePoint(v)}'`
              : Array.isArray(v)
                ? `[${v.map((e) => (typeof e === 'string' ? goQuote(e) : printValue(e))).join(' ')}]`
                : bad(verb, v);
        break;
      case 'd':
        s = typeof v === 'number' && Number.isInteger(v) ? sign(v, String(Math.abs(v))) : Array.isArray(v) ? printValue(v) : bad(verb, v);
        break;
      case 'x':
      case 'X': {
        if (typeof v === 'number' && Number.isInteger(v)) s = sign(v, (sharp ? '0x' : '') + Math.abs(v).toString(16));
        else if (typeof v === 'string') s = (sharp ? '0x' : '') + Buffer.from(v).toString('hex');
        else s = bad(verb, v);
        if (verb === 'X') s = s.toUpperCase();
        break;
      }
      case 'o':
        s = typeof v === 'number' && Number.isInteger(v) ? sign(v, (sharp ? '0' : '') + Math.abs(v).toString(8)) : bad(verb, v);
        break;
      case 'b':
        s = typeof v === 'number' && Number.isInteger(v) ? sign(v, Math.abs(v).toString(2)) : bad(verb, v);
        break;
      case 'c':
        s = typeof v === 'number' && Number.isInteger(v) ? String.fromCodePoint(v) : bad(verb, v);
        break;
      case 't':
        s = typeof v === 'boolean' ? String(v) : bad(verb, v);
        break;
      case 'f':
      case 'F':
      case 'e':
      case 'E':
      case 'g':
      case 'G':
        // Go's int passed to %f is a bad verb; our integral JSON numbers may be floats, so format them.
        s = typeof v === 'number' ? sign(v, formatFloat(Math.abs(v), verb.toLowerCase() === 'g' ? 'g' : verb, prec)) : bad(verb, v);
        if (verb === 'G') s = s.toUpperCase();
        break;
      case 'T':
        s = goType(v);
        break;
      default:
        s = `%!${verb}(${goType(v)}=${printValue(v)})`;
    }
    out += pad(s, width, minus, zero && verb !== 's' && verb !== 'v' && verb !== 'q' && verb !== 'T');
  }
  if (argi < args.length)
    out += `%!(EXTRA ${args
      .slice(argi)
      .map((a) => `${goType(a)}=${printValue(a)}`)
      .join(', ')})`;
  return out;
}
