/**
 * A parser for `WWW-Authenticate` (RFC 7235): one header may hold several challenges, and commas
 * separate both challenges and their parameters, so `Basic realm="a", Bearer realm="b",scope="x:y:pull,push"`
 * has to be read token by token. Node joins repeated headers with ", ", which this also handles.
 */
export interface Challenge {
  /** Lower-cased scheme: `bearer`, `basic`, ... */
  scheme: string;
  /** Parameters with lower-cased names and unquoted values. */
  params: Record<string, string>;
  /** A token68 credential blob when the challenge carries one instead of parameters. */
  token68?: string;
}

const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;
const TOKEN68_CHAR = /[A-Za-z0-9\-._~+/]/;

export function parseWwwAuthenticate(header: string | string[] | undefined | null): Challenge[] {
  if (header == null) return [];
  const text = Array.isArray(header) ? header.join(', ') : header;
  const challenges: Challenge[] = [];
  let pos = 0;
  const len = text.length;
  const isSpace = (c: string) => c === ' ' || c === '\t';
  const skipSpaces = () => {
    while (pos < len && isSpace(text[pos])) pos++;
  };
  const readToken = () => {
    const start = pos;
    while (pos < len && TCHAR.test(text[pos])) pos++;
    return text.slice(start, pos);
  };
  const readQuoted = () => {
    // At the opening quote; a backslash escapes the next char; an unterminated string runs to the end.
    pos++;
    let out = '';
    while (pos < len && text[pos] !== '"') {
      if (text[pos] === '\\' && pos + 1 < len) pos++;
      out += text[pos++];
    }
    pos++;
    return out;
  };
  /** True when `name =` starts at pos (an auth-param rather than a new challenge's scheme). */
  const paramAhead = () => {
    const save = pos;
    const name = readToken();
    skipSpaces();
    const result = name !== '' && text[pos] === '=' && !isToken68End();
    pos = save;
    return result;
  };
  /** At an '=': true when only more '=' then the end or a comma follow (the tail of a token68). */
  const isToken68End = () => {
    let p = pos;
    while (p < len && text[p] === '=') p++;
    while (p < len && isSpace(text[p])) p++;
    return p >= len || text[p] === ',';
  };

  while (pos < len) {
    while (pos < len && (isSpace(text[pos]) || text[pos] === ',')) pos++;
    if (pos >= len) break;
    const scheme = readToken();
    if (!scheme) {
      // Garbage: skip to the next comma and try again.
      while (pos < len && text[pos] !== ',') pos++;
      continue;
    }
    const challenge: Challenge = { scheme: scheme.toLowerCase(), params: {} };
    challenges.push(challenge);
    skipSpaces();
    // token68 form: `Negotiate abc==`
    if (pos < len && text[pos] !== ',' && !paramAhead()) {
      const start = pos;
      while (pos < len && TOKEN68_CHAR.test(text[pos])) pos++;
      while (pos < len && text[pos] === '=') pos++;
      if (pos > start) challenge.token68 = text.slice(start, pos);
      skipSpaces();
      if (pos < len && text[pos] !== ',') {
        while (pos < len && text[pos] !== ',') pos++;
      }
      continue;
    }
    // auth-params until something that is not `name=` follows a comma.
    for (;;) {
      while (pos < len && (isSpace(text[pos]) || text[pos] === ',')) pos++;
      if (pos >= len || !paramAhead()) break;
      const name = readToken().toLowerCase();
      skipSpaces();
      pos++; // '='
      skipSpaces();
      let value: string;
      if (text[pos] === '"') value = readQuoted();
      else {
        const start = pos;
        while (pos < len && text[pos] !== ',' && !isSpace(text[pos])) pos++;
        value = text.slice(start, pos);
      }
      challenge.params[name] = value;
      skipSpaces();
      if (pos < len && text[pos] !== ',') {
        // Junk after a value: skip to the next separator.
        while (pos < len && text[pos] !== ',') pos++;
      }
    }
  }
  return challenges;
}
