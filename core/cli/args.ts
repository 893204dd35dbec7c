/**
 * Argument parsing for CLI commands: one declarative table of flags per command drives both the
 * parsing and `--help`, with docker's (pflag's) conventions and error words: `--name v`, `--name=v`,
 * `-n v`, `-nv`, `-abc`, `--bool=false`, `--` ends the flags, and `unknown flag: --x`.
 */
import { UsageError } from './main';

export interface FlagSpec {
  type: 'boolean' | 'string';
  short?: string;
  /** Repeatable: the values are collected in order. */
  multiple?: boolean;
  /** One line for --help, in docker's words. */
  help?: string;
  /** Shown in --help as (default ...); parsing does not apply it. */
  default?: string;
}

export type Flags = Record<string, FlagSpec>;

type Values<O extends Flags> = { [K in keyof O]?: O[K]['type'] extends 'boolean' ? boolean : O[K] extends { multiple: true } ? string[] : string };

/** `--help` was asked for: main prints the text with the command's description. */
export class HelpRequested extends Error {
  constructor(
    readonly usage: string,
    readonly options: string,
  ) {
    super('help');
  }
}

/** pflag's flag listing: `  -a, --all          text`, a value name for string flags. */
export function flagHelp(flags: Flags): string {
  const rows = Object.entries({ ...flags, help: flags.help ?? { type: 'boolean', help: 'Print usage' } })
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, f]) => {
      const valueName = f.type === 'boolean' ? '' : f.multiple ? ' list' : ' string';
      return [`  ${f.short ? `-${f.short}, ` : '    '}--${name}${valueName}`, `${f.help ?? ''}${f.default !== undefined ? ` (default ${f.default})` : ''}`];
    });
  const width = Math.max(...rows.map(([l]) => l.length));
  return rows.map(([l, h]) => `${l.padEnd(width)}   ${h}`.trimEnd()).join('\n');
}

/** `berth image ls [OPTIONS]` -> `berth image ls`: the words of a usage line before its operands. */
function commandPath(usage: string): string {
  const words = usage.split(' ');
  const end = words.findIndex((w, i) => i > 0 && !/^[a-z][a-z-]*$/.test(w));
  return (end < 0 ? words : words.slice(0, end)).join(' ');
}

function parseBool(flag: string, value: string): boolean {
  const v = value.toLowerCase();
  if (['1', 't', 'true'].includes(v)) return true;
  if (['0', 'f', 'false'].includes(v)) return false;
  throw new UsageError(`invalid argument "${value}" for "${flag}" flag: strconv.ParseBool: parsing "${value}": invalid syntax`);
}

export interface ParsedArgs<O extends Flags> {
  values: Values<O>;
  positionals: string[];
}

/**
 * Parse `argv` against `flags`. With `interspersed: false` (run, create, exec) flags end at the
 * first operand, so the container's command keeps its own flags.
 */
export function parseFlags<O extends Flags>(argv: string[], flags: O, usage: string, opts: { interspersed?: boolean } = {}): ParsedArgs<O> {
  const values: Record<string, string | boolean | string[]> = {};
  const positionals: string[] = [];
  const byShort = new Map(
    Object.entries(flags)
      .filter(([, f]) => f.short)
      .map(([n, f]) => [f.short!, n]),
  );
  const label = (name: string) => `${flags[name].short ? `-${flags[name].short}, ` : ''}--${name}`;
  const set = (name: string, value: string | true) => {
    const f = flags[name];
    if (f.type === 'boolean') values[name] = value === true ? true : parseBool(label(name), value);
    else if (f.multiple) ((values[name] as string[]) ??= []).push(value as string);
    else values[name] = value as string;
  };
  const help = () => new HelpRequested(usage, flagHelp(flags));
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!a.startsWith('-') || a === '-') {
      if (opts.interspersed === false) {
        positionals.push(...argv.slice(i));
        break;
      }
      positionals.push(a);
      continue;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq > 0 ? a.slice(2, eq) : a.slice(2);
      if (!flags[name]) {
        if (name === 'help') throw help();
        throw new UsageError(`unknown flag: --${name}`);
      }
      if (eq > 0) set(name, a.slice(eq + 1));
      else if (flags[name].type === 'boolean') set(name, true);
      else if (i + 1 < argv.length) set(name, argv[++i]);
      else throw new UsageError(`flag needs an argument: --${name}`);
      continue;
    }
    const letters = a.slice(1);
    for (let j = 0; j < letters.length; j++) {
      const name = byShort.get(letters[j]);
      if (!name) {
        if (letters[j] === 'h') throw help();
        throw new UsageError(`unknown shorthand flag: '${letters[j]}' in ${a}`);
      }
      if (flags[name].type === 'boolean') {
        if (letters[j + 1] === '=') {
          set(name, letters.slice(j + 2));
          break;
        }
        set(name, true);
        continue;
      }
      const rest = letters.slice(j + 1);
      if (rest) set(name, rest.startsWith('=') ? rest.slice(1) : rest);
      else if (i + 1 < argv.length) set(name, argv[++i]);
      else throw new UsageError(`flag needs an argument: '${letters[j]}' in ${a}`);
      break;
    }
  }
  return { values: values as Values<O>, positionals };
}

/** Parse flags (interspersed with operands, as most docker commands take them) and check the operand count. */
export function parse<O extends Flags>(argv: string[], flags: O, usage: string, positionals: { min?: number; max?: number } = {}): ParsedArgs<O> {
  const parsed = parseFlags(argv, flags, usage);
  checkArgCount(parsed.positionals.length, usage, positionals);
  return parsed;
}

/** docker's words: `"berth rm" requires at least 1 argument.` / `"berth ps" accepts no arguments.` */
export function checkArgCount(count: number, usage: string, limits: { min?: number; max?: number }): void {
  const cmd = commandPath(usage);
  const plural = (n: number) => `${n} argument${n === 1 ? '' : 's'}`;
  let problem: string | undefined;
  if (limits.min !== undefined && limits.max === limits.min && count !== limits.min) problem = `requires exactly ${plural(limits.min)}`;
  else if (limits.min !== undefined && count < limits.min) problem = `requires at least ${plural(limits.min)}`;
  else if (limits.max === 0 && count > 0) problem = 'accepts no arguments';
  else if (limits.max !== undefined && count > limits.max) problem = `accepts at most ${plural(limits.max)}`;
  if (problem) throw new UsageError(`"${cmd}" ${problem}.\nSee '${cmd} --help'.\n\nUsage:  ${usage}`, { seeHelp: false });
}

/** The registry host of an image name, as Docker decides it (for picking stored credentials). */
export function registryHost(name: string): string {
  const first = name.split('/')[0];
  if (name.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost')) return first;
  return 'docker.io';
}

/** Docker's RAMInBytes: 32m, 1g, 512k, 1024 (bytes); binary units. */
export function parseBytes(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([bkmgt]?)i?b?$/i.exec(s.trim());
  if (!m) throw new UsageError(`invalid size: '${s}'`);
  const mult = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2].toLowerCase() as 'k'];
  return Math.round(Number(m[1]) * mult);
}

/** docker's GetTimestamp: a Unix time, a duration before now (10m, 1h30m), or a date (RFC 3339 and shorter). */
export function parseTimestamp(v: string | undefined): number | undefined {
  if (!v) return undefined;
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v);
  const units: Record<string, number> = { ms: 1e-3, s: 1, m: 60, h: 3600 };
  const parts = [...v.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
  if (parts.length && parts.map((p) => p[0]).join('') === v) return Math.floor(Date.now() / 1000 - parts.reduce((a, p) => a + Number(p[1]) * units[p[2]], 0));
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new UsageError(`invalid time "${v}": expected a Unix time, a duration such as 10m, or a date such as 2026-01-02T15:04:05Z`);
  return Math.floor(t / 1000);
}

/** `--filter k=v` flags as the `filters` query parameter (JSON of key -> values), as docker sends it. */
export function filtersQuery(flags: string[] | undefined): string | undefined {
  const filters: Record<string, Record<string, boolean>> = {};
  for (const f of flags ?? []) {
    const i = f.indexOf('=');
    if (i <= 0) throw new UsageError(`invalid argument "${f}" for "-f, --filter" flag: bad format of filter (expected name=value)`);
    (filters[f.slice(0, i).trim().toLowerCase()] ??= {})[f.slice(i + 1)] = true;
  }
  return Object.keys(filters).length ? JSON.stringify(filters) : undefined;
}
