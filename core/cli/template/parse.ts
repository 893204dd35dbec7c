/**
 * The parser of Go's text/template as Docker users write it for --format: actions, trim markers,
 * comments, pipelines, variables, if/else if/range/with/else/end, break/continue, define/template/block.
 * Errors read like Go's: `template: :1: unexpected "}" in operand`.
 */
import type { Arg, Command, Node, Parsed, Pipe } from './ast';
import { TemplateError, lineOf } from './errors';
import { KEYWORDS, lex, type Token } from './lex';

class Parser {
  private i = 0;
  readonly defines = new Map<string, Node[]>();

  constructor(
    private readonly src: string,
    private readonly toks: Token[],
    private readonly funcs: Set<string>,
  ) {}

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
      if (node.kind === 'bool' || node.kind === 'string' || node.kind === 'number' || node.kind === 'nil')
        this.fail(t.pos, `unexpected . after term "${this.src.slice(t.pos, this.toks[this.i - names.length].pos)}"`);
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
