/**
 * ARG scoping, as Docker has it: ARGs before the first FROM (meta args) are visible only to FROM
 * lines; a stage sees an ARG only after declaring it, and `ARG NAME` without a default inside a
 * stage takes the meta arg's value; `--build-arg` wins over every default; ENV wins over ARG of
 * the same name when substituting.
 */
import { InvalidArgumentError } from '../contracts/errors';
import type { Dockerfile, Instruction, Stage } from './dockerfile';
import { type Lookup, processWord, processWords, rawWords } from './words';

export type ArgValues = Map<string, string | undefined>;

/**
 * Declare the ARGs of one instruction into `into`. `lookup` substitutes in defaults; `meta` gives
 * values to value-less ARGs inside a stage; `consumed` collects the names (for the warning about
 * build-args nobody declared).
 */
export function declareArgs(ins: Instruction, escape: string, into: ArgValues, lookup: Lookup, buildArgs: Map<string, string>, consumed: Set<string>, meta?: ArgValues): void {
  for (const word of rawWords(ins.args, escape)) {
    const eq = word.indexOf('=');
    const name = eq < 0 ? word : word.slice(0, eq);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new InvalidArgumentError(`line ${ins.line}: ARG names are letters, digits and _, got ${JSON.stringify(name)}`);
    consumed.add(name);
    let value: string | undefined = eq < 0 ? undefined : processWord(word.slice(eq + 1), lookup, escape, 'ARG');
    if (eq < 0 && meta?.has(name)) value = meta.get(name);
    if (buildArgs.has(name)) value = buildArgs.get(name);
    into.set(name, value);
  }
}

/** The meta args (before the first FROM) with their values. */
export function metaArgValues(df: Dockerfile, buildArgs: Map<string, string>, consumed = new Set<string>()): ArgValues {
  const meta: ArgValues = new Map();
  for (const ins of df.metaArgs) declareArgs(ins, df.escape, meta, (n) => meta.get(n), buildArgs, consumed);
  return meta;
}

/** A stage's base as named after substituting meta args: `busybox:1.36`, `scratch`, `builder`. */
export function baseName(stage: Stage, meta: ArgValues, escape: string): string {
  const words = processWords(stage.from.args, (n) => meta.get(n), escape, 'FROM');
  if (!words[0]) throw new InvalidArgumentError(`line ${stage.from.line}: FROM: base name (${stage.from.args}) should not be blank`);
  return words[0];
}

/** Substitution inside a stage: ENV (from the config's `Env`) first, then the stage's ARGs. */
export function stageLookup(env: string[], args: ArgValues): Lookup {
  return (name) => envValue(env, name) ?? args.get(name);
}

export function envValue(env: string[], name: string): string | undefined {
  for (let i = env.length - 1; i >= 0; i--) {
    const e = env[i];
    const eq = e.indexOf('=');
    if ((eq < 0 ? e : e.slice(0, eq)) === name) return eq < 0 ? '' : e.slice(eq + 1);
  }
  return undefined;
}
