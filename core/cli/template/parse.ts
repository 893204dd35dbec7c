/**
 * The parser of Go's text/template as Docker users write it for --format: actions, trim markers,
 * comments, pipelines, variables, if/else if/range/with/else/end, break/continue, define/template/block.
 * Errors read like Go's: `template: :1: unexpected "}" in operand`.
 */

export class TemplateError extends Error {}

export type Arg =
  | { kind: 'dot'; pos: number }
  | { kind: 'field'; names: string[]; pos: number }
  | { kind: 'var'; name: string; names: string[]; pos: number }
  | { kind: 'func'; name: string; pos: number }
  | { kind: 'chain'; node: Arg; names: string[]; pos: number }
  | { kind: 'pipe'; pipe: Pipe; pos: number }
  | { kind: 'string'; value: string; pos: number }
  | { kind: 'number'; value: number; text: string; pos: number }
  | { kind: 'bool'; value: boolean; pos: number }
  | { kind: 'nil'; pos: number };

export interface Command {
  args: Arg[];
  pos: number;
  text: string;
}

export interface Pipe {
  decl: string[];
  assign: boolean;
  cmds: Command[];
  pos: number;
  text: string;
}

export interface ControlNode {
  kind: 'if' | 'with' | 'range';
  pipe: Pipe;
  list: Node[];
  elseList?: Node[];
  pos: number;
}

export type Node =
  | { kind: 'text'; text: string }
  | { kind: 'action'; pipe: Pipe; pos: number }
  | ControlNode
  | { kind: 'break' | 'continue'; pos: number }
  | { kind: 'template'; name: string; pipe?: Pipe; pos: number };

export interface Parsed {
  root: Node[];
  defines: Map<string, Node[]>;
  source: string;
}

type Token =
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

const KEYWORDS = new Set(['if', 'else', 'end', 'range', 'with', 'define', 'template', 'block', 'break', 'continue']);
const SPACE = /[ \t\r\n]/;

function lineOf(src: string, pos: number): number {
  let n = 1;
  for (let i = 0; i < pos && i < src.length; i++) if (src[i] === '\n') n++;
  return n;
}

function lex(src: string): Token[] {
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
        const value = /^0[bB]/.test(body) ? parseInt(body.slice(2), 2) : /^0[oO]/.test(body) ? parseInt(body.slice(2), 8) : /^0[xX]/.test(body) ? parseInt(body.slice(2), 16) : /^0\d+$/.test(body) ? parseInt(body, 8) : Number(body);
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
function unquote(s: string, bad: () => never): string {
  return s.replace(/\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|.)/g, (_, e: string) => {
    const simple: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', '"': '"', "'": "'", a: '\x07', b: '\b', f: '\f', v: '\v' };
    if (e in simple) return simple[e];
    if (/^[xuU]/.test(e)) return String.fromCodePoint(parseInt(e.slice(1), 16));
    if (/^[0-7]{3}$/.test(e)) return String.fromCharCode(parseInt(e, 8));
    return bad();
  });
}

class Parser {
  private i = 0;
  readonly defines = new Map<string, Node[]>();

  constructor(private readonly src: string, private readonly toks: Token[], private readonly funcs: Set<string>) {}

  private fail(pos: number, msg: string): never {
    throw new TemplateError(`template: :${lineOf(this.src, pos)}: ${msg}`);
  }

  private peek(): Token {
    return this.toks[this.i];
  }

  private next(): Token {
    return this.toks[this.i++];
  }

  /** Next token inside an action, skipping spaces. */
  private nextNonSpace(): Token {
    let t = this.next();
    while (t.t === 'space') t = this.next();
    return t;
  }

  private peekNonSpace(): Token {
    const save = this.i;
    const t = this.nextNonSpace();
    this.i = save;
    return t;
  }

  parseTop(): Node[] {
    const { list, end } = this.list();
    if (end) this.fail(end.pos, `unexpected {{${end.word}}}`);
    return list;
  }

  /** Nodes up to {{end}} or {{else}} (returned as `end`), or to EOF. */
  private list(): { list: Node[]; end?: { word: 'end' | 'else'; pos: number } } {
    const list: Node[] = [];
    for (;;) {
      const t = this.next();
      if (t.t === 'eof') return { list };
      if (t.t === 'text') {
        list.push({ kind: 'text', text: t.text });
        continue;
      }
      // t is 'open'
      const k = this.peekNonSpace();
      if (k.t === 'ident' && KEYWORDS.has(k.text)) {
        this.nextNonSpace();
        const word = k.text;
        if (word === 'end') {
          this.expectClose('end');
          return { list, end: { word: 'end', pos: k.pos } };
        }
        if (word === 'else') return { list, end: { word: 'else', pos: k.pos } };
        if (word === 'if' || word === 'with' || word === 'range') list.push(this.control(word, k.pos));
        else if (word === 'break' || word === 'continue') {
          this.expectClose(word);
          list.push({ kind: word, pos: k.pos });
        } else if (word === 'define') this.define(k.pos);
        else if (word === 'template' || word === 'block') list.push(this.templateCall(word, k.pos));
        continue;
      }
      const pipe = this.pipeline('command', 'close');
      list.push({ kind: 'action', pipe, pos: pipe.pos });
    }
  }

  private expectClose(context: string): void {
    const t = this.nextNonSpace();
    if (t.t !== 'close') this.fail(t.pos, `unexpected ${this.describe(t)} in ${context}`);
  }

  private control(word: 'if' | 'with' | 'range', pos: number): Node {
    const pipe = this.pipeline(word, 'close');
    if (word === 'range' && pipe.decl.length > 2) this.fail(pos, 'too many declarations in range');
    const body = this.list();
    if (!body.end) this.fail(this.src.length, `unexpected EOF`);
    let elseList: Node[] | undefined;
    if (body.end.word === 'else') {
      const after = this.peekNonSpace();
      // {{else if ...}} / {{else with ...}}: a nested control that shares this one's {{end}}.
      if (after.t === 'ident' && (after.text === 'if' || after.text === 'with') && word !== 'range' && (after.text === word || after.text === 'if')) {
        this.nextNonSpace();
        elseList = [this.control(after.text as 'if' | 'with', after.pos)];
      } else {
        this.expectClose('else');
        const rest = this.list();
        if (!rest.end) this.fail(this.src.length, 'unexpected EOF');
        if (rest.end.word === 'else') this.fail(rest.end.pos, `expected end; found {{else}}`);
        elseList = rest.list;
      }
    }
    return { kind: word, pipe, list: body.list, elseList, pos };
  }

  private define(pos: number): void {
    const nameTok = this.nextNonSpace();
    if (nameTok.t !== 'string') this.fail(nameTok.pos, 'unexpected token in define clause');
    this.expectClose('define clause');
    const body = this.list();
    if (body.end?.word !== 'end') this.fail(pos, 'unexpected EOF');
    this.defines.set(nameTok.value, body.list);
  }

  private templateCall(word: 'template' | 'block', pos: number): Node {
    const nameTok = this.nextNonSpace();
    if (nameTok.t !== 'string') this.fail(nameTok.pos, `unexpected ${this.describe(nameTok)} in ${word} clause`);
    let pipe: Pipe | undefined;
    if (this.peekNonSpace().t === 'close') this.nextNonSpace();
    else pipe = this.pipeline(`${word} clause`, 'close');
    if (word === 'block') {
      const body = this.list();
      if (body.end?.word !== 'end') this.fail(pos, 'unexpected EOF');
      if (!this.defines.has(nameTok.value)) this.defines.set(nameTok.value, body.list);
    }
    return { kind: 'template', name: nameTok.value, pipe, pos };
  }

  private describe(t: Token): string {
    switch (t.t) {
      case 'close':
        return '"}}"';
      case 'rparen':
        return '")"';
      case 'eof':
        return 'EOF';
      case 'ident':
      case 'field':
      case 'var':
        return `<${t.t === 'field' ? '.' : ''}${t.text}>`;
      case 'string':
        return `quoted string`;
      default:
        return `"${this.src.slice(t.pos, t.pos + 1)}"`;
    }
  }

  /** A pipeline up to `}}` (end 'close') or `)` (end 'rparen'), with an optional declaration. */
  private pipeline(context: string, end: 'close' | 'rparen'): Pipe {
    const start = this.peekNonSpace().pos;
    const decl: string[] = [];
    let assign = false;
    // $x := / $x = / $i, $e :=
    const save = this.i;
    const v = this.nextNonSpace();
    if (v.t === 'var') {
      const op = this.nextNonSpace();
      if (op.t === 'declare' || op.t === 'assign') {
        decl.push(v.text);
        assign = op.t === 'assign';
      } else if (op.t === 'comma' && context === 'range') {
        const v2 = this.nextNonSpace();
        const op2 = this.nextNonSpace();
        if (v2.t !== 'var' || (op2.t !== 'declare' && op2.t !== 'assign')) this.fail(v.pos, 'range can only initialize variables');
        decl.push(v.text, v2.text);
        assign = op2.t === 'assign';
      } else this.i = save;
    } else this.i = save;
    const cmds: Command[] = [];
    for (;;) {
      const t = this.peekNonSpace();
      if (t.t === end) {
        this.nextNonSpace();
        break;
      }
      if (t.t === 'eof' || t.t === 'close' || t.t === 'rparen') this.fail(t.pos, `unexpected ${this.describe(t)} in ${end === 'rparen' ? 'operand' : context}`);
      cmds.push(this.command(context, end));
      const after = this.peekNonSpace();
      if (after.t === 'pipe') {
        this.nextNonSpace();
        if (this.peekNonSpace().t === end) this.fail(after.pos, 'missing command');
      } else if (after.t !== end) this.fail(after.pos, `unexpected ${this.describe(after)} in ${context}`);
    }
    if (!cmds.length) this.fail(start, `missing value for ${context}`);
    for (const c of cmds.slice(1)) {
      const first = c.args[0];
      if (first.kind === 'bool' || first.kind === 'nil' || first.kind === 'number' || first.kind === 'string' || first.kind === 'dot') {
        this.fail(first.pos, `non executable command in pipeline stage ${cmds.indexOf(c) + 1}`);
      }
    }
    const endPos = this.toks[this.i - 1].pos;
    return { decl, assign, cmds, pos: start, text: this.src.slice(start, endPos).trim() };
  }

  private command(context: string, end: 'close' | 'rparen'): Command {
    const args: Arg[] = [];
    const pos = this.peekNonSpace().pos;
    for (;;) {
      const t = this.peek();
      if (t.t === 'space') {
        this.next();
        continue;
      }
      if (t.t === end || t.t === 'pipe' || t.t === 'eof' || t.t === 'close' || t.t === 'rparen') break;
      args.push(this.operand(context));
      const after = this.peek();
      if (after.t !== 'space' && after.t !== end && after.t !== 'pipe' && after.t !== 'close' && after.t !== 'rparen' && after.t !== 'eof') {
        this.fail(after.pos, `unexpected ${this.describe(after)} in operand`);
      }
    }
    if (!args.length) this.fail(pos, 'empty command');
    return { args, pos, text: this.src.slice(pos, this.peek().pos).trim() };
  }

  private operand(context: string): Arg {
    const t = this.next();
    let node: Arg;
    switch (t.t) {
      case 'dot':
        node = { kind: 'dot', pos: t.pos };
        break;
      // A chain (.A.B, $x.A) is at its second name, as Go's parser places it.
      case 'field': {
        const names = [t.text];
        const pos = this.peek().t === 'field' ? this.peek().pos : t.pos;
        while (this.peek().t === 'field') names.push((this.next() as { text: string }).text);
        return { kind: 'field', names, pos };
      }
      case 'var': {
        const names: string[] = [];
        const pos = this.peek().t === 'field' ? this.peek().pos : t.pos;
        while (this.peek().t === 'field') names.push((this.next() as { text: string }).text);
        return { kind: 'var', name: t.text, names, pos };
      }
      case 'ident':
        if (KEYWORDS.has(t.text)) this.fail(t.pos, `unexpected <${t.text}> in ${context}`);
        if (!this.funcs.has(t.text)) this.fail(t.pos, `function "${t.text}" not defined`);
        node = { kind: 'func', name: t.text, pos: t.pos };
        break;
      case 'lparen':
        node = { kind: 'pipe', pipe: this.pipeline('parenthesized pipeline', 'rparen'), pos: t.pos };
        break;
      case 'string':
        node = { kind: 'string', value: t.value, pos: t.pos };
        break;
      case 'number':
        node = { kind: 'number', value: t.value, text: t.text, pos: t.pos };
        break;
      case 'bool':
        node = { kind: 'bool', value: t.value, pos: t.pos };
        break;
      case 'nil':
        node = { kind: 'nil', pos: t.pos };
        break;
      default:
        return this.fail(t.pos, `unexpected ${this.describe(t)} in operand`);
    }
    if (this.peek().t === 'field') {
      const names: string[] = [];
      while (this.peek().t === 'field') names.push((this.next() as { text: string }).text);
      if (node.kind === 'bool' || node.kind === 'string' || node.kind === 'number' || node.kind === 'nil') this.fail(t.pos, `unexpected . after term "${this.src.slice(t.pos, this.toks[this.i - names.length].pos)}"`);
      return { kind: 'chain', node, names, pos: t.pos };
    }
    return node;
  }
}

export function parseTemplate(src: string, funcs: Set<string>): Parsed {
  const parser = new Parser(src, lex(src), funcs);
  const root = parser.parseTop();
  return { root, defines: parser.defines, source: src };
}

export { lineOf };
