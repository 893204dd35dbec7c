/**
 * Dockerfile parsing, as Docker's parser does it: parser directives at the very top (`# escape=`
 * picks the line-continuation and escape character; `# syntax=` and `# check=` are accepted and
 * ignored), comment lines dropped (also inside continued lines), lines ending in the escape
 * character joined with the next, instruction names case-insensitive, leading `--flag=value`
 * options split off, and the JSON (exec) form recognised. Variables are substituted later, at
 * build time, when their values are known (see words.ts and instructions/).
 */
import { InvalidArgumentError } from '../contracts/errors';

export const INSTRUCTIONS = [
  'FROM',
  'RUN',
  'CMD',
  'LABEL',
  'MAINTAINER',
  'EXPOSE',
  'ENV',
  'ADD',
  'COPY',
  'ENTRYPOINT',
  'VOLUME',
  'USER',
  'WORKDIR',
  'ARG',
  'ONBUILD',
  'STOPSIGNAL',
  'HEALTHCHECK',
  'SHELL',
] as const;
export type InstructionName = (typeof INSTRUCTIONS)[number];

/** Flags each instruction accepts (others are an error naming the flag). */
const FLAGS: Partial<Record<InstructionName, string[]>> = {
  FROM: ['platform'],
  COPY: ['from', 'chown', 'chmod', 'link', 'parents', 'exclude'],
  ADD: ['chown', 'chmod', 'checksum', 'keep-git-dir', 'link', 'exclude'],
  HEALTHCHECK: ['interval', 'timeout', 'start-period', 'start-interval', 'retries'],
  RUN: ['mount', 'network', 'security'],
};

/** Instructions whose arguments may be a JSON array (the exec form). */
const JSON_FORM = new Set<InstructionName>(['RUN', 'CMD', 'ENTRYPOINT', 'SHELL', 'COPY', 'ADD', 'VOLUME']);

export interface Instruction {
  name: InstructionName;
  /** Line number (1-based) where the instruction starts. */
  line: number;
  /** The instruction as written, continuations joined: `RUN echo hi` (for Step lines). */
  original: string;
  /** `--name=value` options (a bare `--name` is `'true'`), in order. */
  flags: Record<string, string>;
  /** The arguments after the flags, untouched. */
  args: string;
  /** The exec form, when the arguments are a JSON array of strings. */
  json?: string[];
  /** For ONBUILD: the wrapped instruction. */
  inner?: Instruction;
}

export interface Stage {
  index: number;
  /** `AS name`, lower-cased (stage names are case-insensitive). */
  name?: string;
  from: Instruction;
  instructions: Instruction[];
}

export interface Dockerfile {
  /** The name errors use (`Dockerfile`). */
  file: string;
  escape: string;
  /** `ARG` instructions before the first FROM: usable in FROM lines only (unless re-declared). */
  metaArgs: Instruction[];
  stages: Stage[];
}

/** A parse error naming the file and the line: `Dockerfile:7: unknown instruction: RUNN`. */
export class DockerfileError extends InvalidArgumentError {
  constructor(
    readonly file: string,
    readonly line: number,
    detail: string,
  ) {
    super(`${file}:${line}: ${detail}`);
  }
}

/** Dockerfiles above this are refused before they are parsed (real ones are a few KB). */
export const MAX_DOCKERFILE_BYTES = 1024 * 1024;
/** Instructions per Dockerfile, all stages together (a few hundred is a very long one). */
export const MAX_INSTRUCTIONS = 4096;

/** Refuse a Dockerfile of `size` bytes over MAX_DOCKERFILE_BYTES, naming it. */
export function checkDockerfileSize(size: number, file: string): void {
  if (size > MAX_DOCKERFILE_BYTES) {
    throw new InvalidArgumentError(`${file} is ${size} bytes, larger than the ${MAX_DOCKERFILE_BYTES / (1024 * 1024)} MiB limit for a Dockerfile (${MAX_DOCKERFILE_BYTES} bytes)`);
  }
}

const DIRECTIVE = /^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.*?)\s*$/;

export function parseDockerfile(text: string, file = 'Dockerfile'): Dockerfile {
  checkDockerfileSize(Buffer.byteLength(text), file);
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  let escape = '\\';
  let i = 0;
  // Parser directives: only at the very top, each once; anything else ends them.
  const seen = new Set<string>();
  for (; i < lines.length; i++) {
    const m = DIRECTIVE.exec(lines[i]);
    if (!m) break;
    const key = m[1].toLowerCase();
    if (!['escape', 'syntax', 'check'].includes(key)) break; // an unknown directive is a comment
    if (seen.has(key)) throw new DockerfileError(file, i + 1, `only one ${key} parser directive can be used`);
    seen.add(key);
    if (key === 'escape') {
      if (m[2] !== '\\' && m[2] !== '`') throw new DockerfileError(file, i + 1, `invalid escape token '${m[2]}' does not match ` + '` or \\');
      escape = m[2];
    }
  }
  const continuation = new RegExp(`${escapeRegExp(escape)}[ \\t]*$`);
  const isComment = (l: string) => /^\s*#/.test(l);

  const instructions: Instruction[] = [];
  for (; i < lines.length; i++) {
    const first = lines[i];
    if (!first.trim() || isComment(first)) continue;
    const start = i + 1;
    let line = first.replace(/^\s+/, '');
    let ended = !continuation.test(line);
    if (!ended) line = line.replace(continuation, '');
    while (!ended && i + 1 < lines.length) {
      const next = lines[++i];
      if (isComment(next)) continue;
      if (!next.trim()) continue; // empty continuation lines are skipped (Docker warns)
      ended = !continuation.test(next);
      line += ended ? next : next.replace(continuation, '');
    }
    if (instructions.length === MAX_INSTRUCTIONS) throw new DockerfileError(file, start, `more than ${MAX_INSTRUCTIONS} instructions: the limit for a Dockerfile`);
    instructions.push(parseInstruction(line.trim(), start, escape, file));
  }

  const metaArgs: Instruction[] = [];
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.name === 'FROM') {
      stages.push({ index: stages.length, name: stageName(ins, file), from: ins, instructions: [] });
    } else if (!stages.length) {
      if (ins.name !== 'ARG') throw new DockerfileError(file, ins.line, `${ins.name} before the first FROM: only ARG may come before FROM`);
      metaArgs.push(ins);
    } else stages[stages.length - 1].instructions.push(ins);
  }
  if (!stages.length)
    throw new DockerfileError(file, instructions.length ? instructions[instructions.length - 1].line : 1, 'no FROM instruction: a Dockerfile must start with FROM (after optional ARGs)');
  const names = new Set<string>();
  for (const s of stages) {
    if (!s.name) continue;
    if (names.has(s.name)) throw new DockerfileError(file, s.from.line, `duplicate stage name "${s.name}"`);
    names.add(s.name);
  }
  return { file, escape, metaArgs, stages };
}

/** One instruction on its own (ONBUILD triggers, build labels); `what` names it in errors. */
export function parseInstructionLine(text: string, line: number, escape: string, what: string): Instruction {
  return parseInstruction(text.trim(), line, escape, what);
}

function parseInstruction(text: string, line: number, escape: string, file: string): Instruction {
  const m = /^(\S+)\s*([\s\S]*)$/.exec(text)!;
  const name = m[1].toUpperCase() as InstructionName;
  if (!(INSTRUCTIONS as readonly string[]).includes(name)) throw new DockerfileError(file, line, `unknown instruction: ${m[1]}`);
  let rest = m[2];
  const flags: Record<string, string> = {};
  const allowed = FLAGS[name] ?? [];
  for (;;) {
    const f = /^--([A-Za-z][A-Za-z0-9-]*)(?:=(\S*))?(?:\s+|$)/.exec(rest);
    if (!f) break;
    if (!allowed.includes(f[1])) throw new DockerfileError(file, line, `unknown flag: --${f[1]} (${name} accepts ${allowed.length ? allowed.map((a) => `--${a}`).join(', ') : 'no flags'})`);
    flags[f[1]] = f[2] ?? 'true';
    rest = rest.slice(f[0].length);
  }
  const ins: Instruction = { name, line, original: text, flags, args: rest.trim() };
  if (JSON_FORM.has(name)) ins.json = parseJsonArray(ins.args);
  if (name === 'ONBUILD') {
    if (!ins.args) throw new DockerfileError(file, line, 'ONBUILD requires at least one argument');
    const inner = parseInstruction(ins.args, line, escape, file);
    if (['ONBUILD', 'FROM', 'MAINTAINER'].includes(inner.name)) throw new DockerfileError(file, line, `${inner.name} isn't allowed as an ONBUILD trigger`);
    ins.inner = inner;
  }
  const required: InstructionName[] = ['FROM', 'RUN', 'ENV', 'LABEL', 'EXPOSE', 'ADD', 'COPY', 'USER', 'WORKDIR', 'ARG', 'STOPSIGNAL', 'VOLUME', 'SHELL', 'MAINTAINER'];
  if (required.includes(name) && !ins.args) throw new DockerfileError(file, line, `${name} requires at least one argument`);
  if ((name === 'COPY' || name === 'ADD') && (ins.json ?? ins.args.split(/\s+/)).length < 2)
    throw new DockerfileError(file, line, `${name} requires at least two arguments, but only one was provided. Destination could not be determined`);
  if (name === 'SHELL' && !ins.json) throw new DockerfileError(file, line, 'SHELL requires the arguments to be in JSON form');
  return ins;
}

/** `["a", "b"]` -> ['a', 'b']; anything that is not a JSON array of strings is the shell form. */
export function parseJsonArray(args: string): string[] | undefined {
  if (!args.startsWith('[')) return undefined;
  try {
    const v = JSON.parse(args);
    if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v;
  } catch {
    /* not JSON: the shell form, as in Docker */
  }
  return undefined;
}

function stageName(from: Instruction, file: string): string | undefined {
  const words = from.args.split(/\s+/);
  if (words.length === 1) return undefined;
  if (words.length !== 3 || words[1].toUpperCase() !== 'AS')
    throw new DockerfileError(file, from.line, `FROM requires either one or three arguments (FROM IMAGE [AS NAME]), got ${JSON.stringify(from.args)}`);
  const name = words[2].toLowerCase();
  if (!/^[a-z][a-z0-9-_.]*$/.test(name)) throw new DockerfileError(file, from.line, `invalid name for build stage: "${words[2]}", name can't start with a number or contain symbols`);
  return name;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
