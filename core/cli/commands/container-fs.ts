/** A container's filesystem from outside: `export` (a tar of it) and `diff` (what changed). */
import * as fs from 'node:fs';
import type { CommandContext } from '../main';
import { UsageError } from '../main';
import { parse } from '../args';

export async function exportFs({ client, argv, out }: CommandContext): Promise<void> {
  const { values, positionals } = parse(argv, { output: { type: 'string', short: 'o', help: 'Write to a file, instead of STDOUT' } }, 'berth export [OPTIONS] CONTAINER', { min: 1, max: 1 });
  if (!values.output && out.isTTY) throw new UsageError('cowardly refusing to write a tar to a terminal: use -o FILE or redirect');
  const res = await client.request(`/containers/${encodeURIComponent(positionals[0])}/export`);
  const dest = values.output ? fs.createWriteStream(values.output) : out;
  await new Promise<void>((resolve, reject) => {
    res.pipe(dest);
    res.on('end', resolve);
    res.on('error', reject);
  });
}

export async function diff({ client, argv, out }: CommandContext): Promise<void> {
  const { positionals } = parse(argv, {}, 'berth diff CONTAINER', { min: 1, max: 1 });
  const changes = await client.json<{ Path: string; Kind: number }[]>(`/containers/${encodeURIComponent(positionals[0])}/changes`);
  out.write(changes.map((c) => `${'CAD'[c.Kind]} ${c.Path}\n`).join(''));
}
