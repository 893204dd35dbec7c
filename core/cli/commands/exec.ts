import type { CommandContext } from '../main';
import { type Flags, checkArgCount, parseFlags } from '../args';
import { demux, hijack } from '../stream';
import { envFrom, type RunOpts } from './run-flags';

const EXEC_FLAGS: Flags = {
  detach: { type: 'boolean', short: 'd', help: 'Detached mode: run command in the background' },
  env: { type: 'string', short: 'e', multiple: true, help: 'Set environment variables' },
  'env-file': { type: 'string', multiple: true, help: 'Read in a file of environment variables' },
  interactive: { type: 'boolean', short: 'i', help: 'Keep STDIN open even if not attached' },
  privileged: { type: 'boolean', help: 'Give extended privileges to the command' },
  tty: { type: 'boolean', short: 't', help: 'Allocate a pseudo-TTY' },
  user: { type: 'string', short: 'u', help: 'Username or UID (format: <name|uid>[:<group|gid>])' },
  workdir: { type: 'string', short: 'w', help: 'Working directory inside the container' },
};

export async function exec({ client, argv, out }: CommandContext): Promise<number> {
  const usage = 'berth exec [OPTIONS] CONTAINER COMMAND [ARG...]';
  const { values, positionals } = parseFlags(argv, EXEC_FLAGS, usage, { interspersed: false });
  checkArgCount(positionals.length, usage, { min: 2 });
  const opts = values as RunOpts;
  const [container, ...cmd] = positionals;
  const tty = !!opts.tty;
  const interactive = !!opts.interactive;
  const env = envFrom(opts);
  // docker gives a terminal TERM=xterm unless the container's or the exec's environment sets TERM.
  if (tty) {
    const info = await client.json(`/containers/${encodeURIComponent(container)}/json`);
    if (![...(info.Config?.Env ?? []), ...env].some((e: string) => e.startsWith('TERM='))) env.unshift('TERM=xterm');
  }
  const { Id } = await client.json<{ Id: string }>(`/containers/${encodeURIComponent(container)}/exec`, {
    method: 'POST',
    body: {
      Cmd: cmd,
      Env: env,
      WorkingDir: opts.workdir ?? '',
      User: opts.user ?? '',
      Tty: tty,
      Privileged: !!opts.privileged,
      AttachStdin: interactive && !opts.detach,
      AttachStdout: !opts.detach,
      AttachStderr: !opts.detach,
    },
  });
  if (opts.detach) {
    await client.request(`/exec/${Id}/start`, { method: 'POST', body: { Detach: true, Tty: tty } });
    return 0;
  }
  const socket = await hijack(client, `/exec/${Id}/start`, {}, { Detach: false, Tty: tty });
  const stdin = interactive ? process.stdin : undefined;
  const rawMode = !!(tty && stdin?.isTTY);
  try {
    if (rawMode) stdin!.setRawMode(true);
    if (tty && process.stdout.isTTY) void client.request(`/exec/${Id}/resize`, { method: 'POST', query: { h: process.stdout.rows, w: process.stdout.columns } }).catch(() => undefined);
    if (stdin) {
      stdin.pipe(socket);
      stdin.on('end', () => socket.end());
    }
    if (tty)
      await new Promise<void>((r) => {
        socket.pipe(out, { end: false });
        socket.on('close', r);
        socket.on('end', r);
      });
    else await demux(socket, out, process.stderr);
  } finally {
    if (rawMode) stdin!.setRawMode(false);
    stdin?.unpipe(socket);
    stdin?.pause();
    socket.destroy();
  }
  const info = await client.json(`/exec/${Id}/json`);
  return info.ExitCode ?? 0;
}
