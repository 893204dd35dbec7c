/**
 * `berth bench isolation --config A.json --config B.json ... --image REF [-n N] [--json FILE]`:
 * spawns a private berthd per config (it does not use the running daemon) and compares start
 * latency, berthd-side phase times, monitor and container memory, and escape probes.
 */
import { promises as fs } from 'node:fs';
import type { CommandContext } from '../main';
import { UsageError } from '../main';
import { parse } from '../args';
import { table } from '../render';
import { benchIsolation, renderIsolation } from '../bench-isolation';

const USAGE = 'berth bench isolation --config FILE [--config FILE ...] --image REF [-n N] [--json FILE] [-q]';

export async function bench({ argv, out, err }: CommandContext): Promise<number> {
  const kind = argv.shift();
  if (kind !== 'isolation') throw new UsageError(`unknown bench "${kind ?? ''}" (known: isolation)\nUsage: ${USAGE}`);
  const { values } = parse(
    argv,
    {
      config: { type: 'string', multiple: true, help: 'A berthd config to compare (one per configuration)' },
      image: { type: 'string', help: "The image each configuration's daemon pulls and runs" },
      n: { type: 'string', short: 'n', help: 'Runs per configuration', default: '10' },
      json: { type: 'string', help: 'Write the raw samples to this file' },
      quiet: { type: 'boolean', short: 'q', help: 'Print only the summary' },
    },
    USAGE,
    { max: 0 },
  );
  const configs = values.config ?? [];
  if (!configs.length) throw new UsageError(`give at least one --config FILE\nUsage: ${USAGE}`);
  if (!values.image) throw new UsageError(`--image REF is required (each config's daemon pulls it)\nUsage: ${USAGE}`);
  const n = values.n === undefined ? 10 : Number(values.n);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`-n: expected a positive integer, got "${values.n}"`);
  const result = await benchIsolation({
    configs,
    image: values.image,
    n,
    progress: values.quiet ? undefined : (line) => err.write(`${line}\n`),
  });
  if (values.json) await fs.writeFile(values.json, JSON.stringify(result, null, 2) + '\n');
  out.write(renderIsolation(result, table));
  return 0;
}
