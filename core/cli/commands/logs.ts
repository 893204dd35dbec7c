import type { CommandContext } from '../main';
import { parse, parseTimestamp } from '../args';
import { demux } from '../stream';

export async function logs({ client, argv, out }: CommandContext): Promise<void> {
  const { values, positionals } = parse(
    argv,
    {
      follow: { type: 'boolean', short: 'f', help: 'Follow log output' },
      tail: { type: 'string', short: 'n', help: 'Number of lines to show from the end of the logs' },
      timestamps: { type: 'boolean', short: 't', help: 'Show timestamps' },
      since: { type: 'string', help: 'Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 minutes)' },
      until: { type: 'string', help: 'Show logs before a timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 minutes)' },
    },
    'berth logs [-f] [--tail N] [-t] CONTAINER',
    { min: 1, max: 1 },
  );
  const info = await client.json(`/containers/${encodeURIComponent(positionals[0])}/json`);
  const res = await client.request(`/containers/${info.Id}/logs`, {
    query: { stdout: 1, stderr: 1, follow: values.follow, tail: values.tail ?? 'all', timestamps: values.timestamps, since: parseTimestamp(values.since), until: parseTimestamp(values.until) },
  });
  if (info.Config.Tty) {
    res.pipe(out);
    await new Promise((r) => res.on('end', r));
    return;
  }
  await demux(res, out, process.stderr);
}
