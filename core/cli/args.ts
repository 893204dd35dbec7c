/** Argument parsing for CLI commands: node's parseArgs with docker-like conventions. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from './main';

type Options = NonNullable<ParseArgsConfig['options']>;

export function parse<O extends Options>(argv: string[], options: O, usage: string, positionals: { min?: number; max?: number } = {}) {
  const { values, positionals: pos } = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean' } }, allowPositionals: true, strict: true });
  if ((values as Record<string, unknown>).help) {
    process.stdout.write(`Usage: ${usage}\n`);
    process.exit(0);
  }
  if (positionals.min !== undefined && pos.length < positionals.min) throw new UsageError(`requires at least ${positionals.min} argument${positionals.min > 1 ? 's' : ''}\nUsage: ${usage}`);
  if (positionals.max !== undefined && pos.length > positionals.max) throw new UsageError(`accepts at most ${positionals.max} argument${positionals.max > 1 ? 's' : ''}\nUsage: ${usage}`);
  return { values: values as { [K in keyof O]?: O[K]['type'] extends 'boolean' ? boolean : O[K] extends { multiple: true } ? string[] : string }, positionals: pos };
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
