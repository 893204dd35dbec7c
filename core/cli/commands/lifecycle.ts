/** Commands that change a container's state by name: stop, restart, kill, rm, rename, wait. */
import type { CommandContext } from '../main';
import { parse } from '../args';
import { forEachName as forEach } from '../render';

export async function stop({ client, argv, out }: CommandContext): Promise<number> {
  const { values, positionals } = parse(
    argv,
    { time: { type: 'string', short: 't', help: 'Seconds to wait for stop before killing it' }, signal: { type: 'string', short: 's', help: 'Signal to send to the container' } },
    'berth stop [OPTIONS] CONTAINER [CONTAINER...]',
    { min: 1 },
  );
  return forEach(positionals, out, (c) => client.request(`/containers/${encodeURIComponent(c)}/stop`, { method: 'POST', query: { t: values.time, signal: values.signal } }));
}

export async function restart({ client, argv, out }: CommandContext): Promise<number> {
  const { values, positionals } = parse(
    argv,
    { time: { type: 'string', short: 't', help: 'Seconds to wait for stop before killing the container' } },
    'berth restart [OPTIONS] CONTAINER [CONTAINER...]',
    { min: 1 },
  );
  return forEach(positionals, out, (c) => client.request(`/containers/${encodeURIComponent(c)}/restart`, { method: 'POST', query: { t: values.time } }));
}

export async function kill({ client, argv, out }: CommandContext): Promise<number> {
  const { values, positionals } = parse(argv, { signal: { type: 'string', short: 's', help: 'Signal to send to the container' } }, 'berth kill [OPTIONS] CONTAINER [CONTAINER...]', { min: 1 });
  return forEach(positionals, out, (c) => client.request(`/containers/${encodeURIComponent(c)}/kill`, { method: 'POST', query: { signal: values.signal } }));
}

export async function rm({ client, argv, out }: CommandContext): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      force: { type: 'boolean', short: 'f', help: 'Force the removal of a running container (uses SIGKILL)' },
      volumes: { type: 'boolean', short: 'v', help: 'Remove anonymous volumes associated with the container' },
    },
    'berth rm [OPTIONS] CONTAINER [CONTAINER...]',
    { min: 1 },
  );
  return forEach(positionals, out, (c) => client.request(`/containers/${encodeURIComponent(c)}`, { method: 'DELETE', query: { force: values.force, v: values.volumes } }));
}

export async function rename({ client, argv }: CommandContext): Promise<void> {
  const { positionals } = parse(argv, {}, 'berth rename CONTAINER NEW_NAME', { min: 2, max: 2 });
  await client.request(`/containers/${encodeURIComponent(positionals[0])}/rename`, { method: 'POST', query: { name: positionals[1] } });
}

export async function wait({ client, argv, out }: CommandContext): Promise<number> {
  const { positionals } = parse(argv, {}, 'berth wait CONTAINER [CONTAINER...]', { min: 1 });
  // Like docker wait: the codes are printed, the command itself succeeds (scripts read the output).
  for (const c of positionals) {
    const r = await client.json(`/containers/${encodeURIComponent(c)}/wait`, { method: 'POST' });
    out.write(`${r.StatusCode}\n`);
  }
  return 0;
}
