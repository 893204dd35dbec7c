/**
 * The evaluator of parsed templates. Data is JSON as the API returns it (objects are Go maps: a
 * missing key is `<no value>`) or struct-like contexts marked with STRUCT, whose fields may be
 * methods (`.Label "k"`) and whose missing fields are errors, as with docker's formatter contexts.
 */
import type { Arg, Command, ControlNode, Node, Parsed, Pipe } from './ast';
import { TemplateError, lineOf } from './errors';
import { BUILTINS, DOCKER_FUNCS, isMap, truth, type TemplateFunc } from './funcs';
import { parseTemplate } from './parse';
import { STRUCT, type Value, goType, printValue } from './fmt';

class BreakSignal {}
class ContinueSignal {}
class ExecError extends Error {}

class State {
  out = '';
  private vars: { name: string; value: Value }[];
  private depth = 0;

  constructor(
    private readonly t: Parsed,
    private readonly funcs: Record<string, TemplateFunc>,
    root: Value,
  ) {
    this.vars = [{ name: '$', value: root }];
  }

  private fail(pos: number, context: string, msg: string): never {
    const before = this.t.source.slice(0, pos);
    const nl = before.lastIndexOf('\n');
    throw new ExecError(`template: :${lineOf(this.t.source, pos)}:${nl < 0 ? pos : pos - nl - 1}: executing "" at <${context}>: ${msg}`);
  }

  walk(dot: Value, nodes: Node[]): void {
    for (const n of nodes) this.node(dot, n);
  }

  private scoped(fn: () => void): void {
    const mark = this.vars.length;
    try {
      fn();
    } finally {
      this.vars.length = mark;
    }
  }

  private node(dot: Value, n: Node): void {
    switch (n.kind) {
      case 'text':
        this.out += n.text;
        return;
      case 'action': {
        const v = this.pipe(dot, n.pipe);
        if (!n.pipe.decl.length) this.out += this.printable(v, n.pipe);
        return;
      }
      case 'if':
      case 'with':
        this.scoped(() => {
          const v = this.pipe(dot, n.pipe);
          if (truth(v)) this.walk(n.kind === 'with' ? v : dot, n.list);
          else if (n.elseList) this.walk(dot, n.elseList);
        });
        return;
      case 'range':
        this.scoped(() => this.range(dot, n));
        return;
      case 'break':
        throw new BreakSignal();
      case 'continue':
        throw new ContinueSignal();
      case 'template': {
        const body = this.t.defines.get(n.name);
        if (!body) this.fail(n.pos, `template ${n.name}`, `no such template "${n.name}"`);
        if (++this.depth > 1000) this.fail(n.pos, `template ${n.name}`, 'exceeded maximum template depth (1000)');
        const arg = n.pipe ? this.pipe(dot, n.pipe) : undefined;
        const saved = this.vars;
        this.vars = [{ name: '$', value: arg }];
        try {
          this.walk(arg, body);
        } finally {
          this.vars = saved;
          this.depth--;
        }
      }
    }
  }

  private printable(v: Value, pipe: Pipe): string {
    if (typeof v === 'function') this.fail(pipe.pos, pipe.text, "can't print a function value");
    return printValue(v);
  }

  private range(dot: Value, n: ControlNode): void {
    const v = this.pipe(dot, { ...n.pipe, decl: [] });
    const entries: [Value, Value][] = Array.isArray(v)
      ? v.map((e, i) => [i, e])
      : isMap(v)
        ? Object.keys(v)
            .sort()
            .map((k) => [k, v[k]])
        : typeof v === 'number' && Number.isInteger(v)
          ? Array.from({ length: Math.max(0, v) }, (_, i) => [i, i])
          : v === null || v === undefined
            ? []
            : this.fail(n.pos, n.pipe.text, `range can't iterate over ${printValue(v)}`);
    if (!entries.length) {
      if (n.elseList) this.walk(dot, n.elseList);
      return;
    }
    for (const [k, e] of entries) {
      const mark = this.vars.length;
      if (n.pipe.decl.length === 1) this.setVar(n.pipe.decl[0], e, n.pipe.assign, n.pos);
      if (n.pipe.decl.length === 2) {
        this.setVar(n.pipe.decl[0], k, n.pipe.assign, n.pos);
        this.setVar(n.pipe.decl[1], e, n.pipe.assign, n.pos);
      }
      try {
        this.walk(e, n.list);
      } catch (sig) {
        if (sig instanceof BreakSignal) break;
        if (!(sig instanceof ContinueSignal)) throw sig;
      } finally {
        this.vars.length = mark;
      }
    }
  }

  private setVar(name: string, value: Value, assign: boolean, pos: number): void {
    if (!assign) {
      this.vars.push({ name, value });
      return;
    }
    for (let i = this.vars.length - 1; i >= 0; i--) {
      if (this.vars[i].name === name) {
        this.vars[i].value = value;
        return;
      }
    }
    this.fail(pos, name, `undefined variable: ${name}`);
  }

  private lookupVar(name: string, pos: number): Value {
    for (let i = this.vars.length - 1; i >= 0; i--) if (this.vars[i].name === name) return this.vars[i].value;
    return this.fail(pos, name, `undefined variable: ${name}`);
  }

  pipe(dot: Value, pipe: Pipe): Value {
    let value: Value = undefined;
    let piped = false;
    for (const cmd of pipe.cmds) {
      value = this.command(dot, cmd, piped ? [value] : []);
      piped = true;
    }
    if (pipe.decl.length) this.setVar(pipe.decl[0], value, pipe.assign, pipe.pos);
    return value;
  }

  private command(dot: Value, cmd: Command, final: Value[]): Value {
    const [first, ...rest] = cmd.args;
    const argText = first.kind === 'field' ? '.' + first.names.join('.') : first.kind === 'var' ? first.name + first.names.map((n) => '.' + n).join('') : cmd.text;
    switch (first.kind) {
      case 'func':
        return this.call(dot, first.name, rest, final, first.pos, cmd.text);
      case 'field':
        return this.fieldChain(dot, dot, first.names, rest.map((a) => this.arg(dot, a)).concat(final), first.pos, argText);
      case 'var':
        return this.fieldChain(dot, this.lookupVar(first.name, first.pos), first.names, rest.map((a) => this.arg(dot, a)).concat(final), first.pos, argText);
      case 'chain':
        return this.fieldChain(dot, this.arg(dot, first.node), first.names, rest.map((a) => this.arg(dot, a)).concat(final), first.pos, argText);
      default:
        if (rest.length || final.length) this.fail(first.pos, argText, `can't give argument to non-function ${argText}`);
        return this.arg(dot, first);
    }
  }

  private call(dot: Value, name: string, args: Arg[], final: Value[], pos: number, text = name): Value {
    if (name === 'and' || name === 'or') {
      const all = [...args.map((a) => () => this.arg(dot, a)), ...final.map((v) => () => v)];
      if (!all.length) this.fail(pos, text, `wrong number of args for ${name}: want at least 1 got 0`);
      let v: Value;
      for (const get of all) {
        v = get();
        if (truth(v) === (name === 'or')) return v;
      }
      return v;
    }
    const fn = this.funcs[name] ?? BUILTINS[name];
    const values = [...args.map((a) => this.arg(dot, a)), ...final];
    try {
      return fn(...values);
    } catch (err) {
      if (err instanceof ExecError) throw err;
      return this.fail(pos, text, `error calling ${name}: ${(err as Error).message}`);
    }
  }

  private arg(dot: Value, a: Arg): Value {
    switch (a.kind) {
      case 'dot':
        return dot;
      case 'string':
      case 'number':
      case 'bool':
        return a.value;
      case 'nil':
        return this.fail(a.pos, 'nil', 'nil is not a command');
      case 'pipe':
        return this.scopedPipe(dot, a.pipe);
      case 'func':
        return this.call(dot, a.name, [], [], a.pos);
      case 'field':
        return this.fieldChain(dot, dot, a.names, [], a.pos, '.' + a.names.join('.'));
      case 'var':
        return this.fieldChain(dot, this.lookupVar(a.name, a.pos), a.names, [], a.pos, a.name + a.names.map((n) => '.' + n).join(''));
      case 'chain':
        return this.fieldChain(dot, this.arg(dot, a.node), a.names, [], a.pos, '.' + a.names.join('.'));
    }
  }

  private scopedPipe(dot: Value, pipe: Pipe): Value {
    const mark = this.vars.length;
    const v = this.pipe(dot, pipe);
    if (!pipe.decl.length) this.vars.length = mark;
    return v;
  }

  /** .A.B.C on `receiver`; the last name gets the arguments (a method call), as in Go. */
  private fieldChain(_dot: Value, receiver: Value, names: string[], args: Value[], pos: number, text: string): Value {
    let v = receiver;
    names.forEach((name, i) => {
      const last = i === names.length - 1;
      v = this.field(v, name, last ? args : [], last && args.length > 0, pos, text);
    });
    if (!names.length && args.length) this.fail(pos, text, `can't give argument to non-function ${text}`);
    return v;
  }

  private field(receiver: Value, name: string, args: Value[], hasArgs: boolean, pos: number, text: string): Value {
    if (receiver === null || receiver === undefined) this.fail(pos, text, `nil pointer evaluating interface {}.${name}`);
    const struct = (receiver as { [STRUCT]?: string })[STRUCT];
    if (struct) {
      const member = Object.prototype.hasOwnProperty.call(receiver, name) || name in (receiver as object) ? (receiver as Record<string, Value>)[name] : undefined;
      if (member === undefined && !(name in (receiver as object))) this.fail(pos, text, `can't evaluate field ${name} in type ${struct}`);
      if (typeof member === 'function') {
        try {
          return (member as TemplateFunc).apply(receiver, args);
        } catch (err) {
          return this.fail(pos, text, `error calling ${name}: ${(err as Error).message}`);
        }
      }
      if (hasArgs) this.fail(pos, text, `${name} has arguments but cannot be invoked as function`);
      return member;
    }
    if (isMap(receiver)) {
      if (hasArgs) this.fail(pos, text, `${name} is not a method but has arguments`);
      return Object.prototype.hasOwnProperty.call(receiver, name) ? receiver[name] : undefined;
    }
    return this.fail(pos, text, `can't evaluate field ${name} in type ${goType(receiver)}`);
  }
}

export interface Template {
  /** Render against `data`; throws TemplateError with Go's message when execution fails. */
  execute(data: Value): string;
  /** Render as far as it goes: docker's table headers keep what was written before an error. */
  executePartial(data: Value): string;
}

export function compileTemplate(source: string, funcs: Record<string, TemplateFunc> = DOCKER_FUNCS): Template {
  const all = { ...funcs };
  const parsed = parseTemplate(source, new Set([...Object.keys(BUILTINS), 'and', 'or', ...Object.keys(all)]));
  const run = (data: Value, partial: boolean): string => {
    const state = new State(parsed, all, data);
    try {
      state.walk(data, parsed.root);
    } catch (err) {
      if (partial && err instanceof ExecError) return state.out;
      if (err instanceof ExecError) throw new TemplateError(err.message);
      if (err instanceof BreakSignal || err instanceof ContinueSignal) throw new TemplateError('template: {{break}} or {{continue}} outside {{range}}');
      throw err;
    }
    return state.out;
  };
  return { execute: (d) => run(d, false), executePartial: (d) => run(d, true) };
}
