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
