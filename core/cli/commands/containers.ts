/**
 * The `docker run` sequence: create (pulling a missing image), attach and wait, start, relay the
 * output and signals until the exit; `run`, `create`, `start` and `attach` are its parts.
 */
import type { CommandContext } from '../main';
import { parse, registryHost } from '../args';
import { ApiError, type Client } from '../client';
import { registryAuthHeader } from '../credentials';
import { ProgressRenderer, forEachName as forEach } from '../render';
import { demux, hijack } from '../stream';
import { createBody } from './create-body';
import { RunError, parseRunArgs, type RunOpts } from './run-flags';

async function pullImage(client: Client, image: string, err: NodeJS.WriteStream, platform?: string): Promise<void> {
  const at = image.lastIndexOf('@');
  const colon = image.lastIndexOf(':');
  const hasTag = at < 0 && colon > image.lastIndexOf('/');
  const [fromImage, tag] = at > 0 ? [image.slice(0, at), image.slice(at + 1)] : hasTag ? [image.slice(0, colon), image.slice(colon + 1)] : [image, 'latest'];
  const renderer = new ProgressRenderer(err);
  await client.stream('/images/create', { method: 'POST', query: { fromImage, tag, platform }, headers: registryAuthHeader(registryHost(image)) }, (m) => renderer.handle(m));
  if (renderer.error) throw new ApiError(500, renderer.error);
}

/** Create, pulling the image first when it is missing (docker's behaviour). */
async function createContainer(client: Client, opts: RunOpts, image: string, cmd: string[], err: NodeJS.WriteStream): Promise<string> {
  const body = createBody(opts, image, cmd);
  const create = () => client.json<{ Id: string }>('/containers/create', { method: 'POST', query: { name: opts.name as string | undefined }, body });
  if (opts.pull === 'always') await pullImage(client, image, err, opts.platform as string | undefined);
  try {
    return (await create()).Id;
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 404 && /No such image/.test(e.message)) || opts.pull === 'never') throw e;
    err.write(`Unable to find image '${image}' locally\n`);
    await pullImage(client, image, err, opts.platform as string | undefined);
    return (await create()).Id;
  }
}

export async function create({ client, argv, out, err }: CommandContext): Promise<number> {
  return reportingRunErrors('create', err, async () => {
    const { opts, image, cmd } = parseRunArgs(argv, 'berth create [OPTIONS] IMAGE [COMMAND] [ARG...]');
    out.write((await createContainer(client, opts, image, cmd, err)) + '\n');
    return 0;
  });
}

export async function run({ client, argv, out, err }: CommandContext): Promise<number> {
  return reportingRunErrors('run', err, async () => {
    const { opts, image, cmd } = parseRunArgs(argv, 'berth run [OPTIONS] IMAGE [COMMAND] [ARG...]');
    // A terminal's input never ends: piped stdin would reach EOF and leave the process waiting (docker refuses too).
    if (opts.tty && opts.interactive && !opts.detach && !process.stdin.isTTY) throw new Error('the input device is not a TTY');
    const id = await createContainer(client, opts, image, cmd, err);
    if (opts.detach) {
      try {
        await client.request(`/containers/${id}/start`, { method: 'POST' });
      } catch (e) {
        throw e instanceof ApiError ? new StartError(e.status, e.message, e.reason) : e;
      }
      out.write(id + '\n');
      return 0;
    }
    return attachAndStart(client, id, { tty: !!opts.tty, stdin: !!opts.interactive, autoRemove: !!opts.rm, start: true });
  });
}

/**
 * docker run/create report their failures as `docker: MESSAGE.` plus the help hint and exit 125,
 * or 126/127 when the process could not be run; berth does the same in its own name.
 */
async function reportingRunErrors(command: string, err: NodeJS.WriteStream, fn: () => Promise<number>): Promise<number> {
  const report = (message: string) => err.write(`berth: ${message}${message.endsWith('.') ? '' : '.'}\nSee 'berth ${command} --help'.\n`);
  try {
    return await fn();
  } catch (e) {
    if (e instanceof StartError) {
      report(`Error response from daemon: ${e.message}`);
      return startFailureCode(e);
    }
    if (e instanceof ApiError) report(`Error response from daemon: ${e.message}`);
    else if (e instanceof RunError) report(e.message);
    else throw e;
    return 125;
  }
}

/** The start of a created container failed (as opposed to the create or the attach). */
class StartError extends ApiError {}

/** docker run's exit codes for a process that never ran, from the daemon's reason: 127 not found, 126 not runnable, else 125. */
function startFailureCode(err: ApiError): number {
  return err.reason === 'command-not-found' ? 127 : err.reason === 'command-not-executable' ? 126 : 125;
}

/** The `docker run` sequence: attach, wait (registered first), start, relay until exit. */
async function attachAndStart(client: Client, id: string, o: { tty: boolean; stdin: boolean; autoRemove: boolean; start: boolean }): Promise<number> {
  // Attach and wait are independent; both must be registered before the start, so send them together.
  const [socket, waitRes] = await Promise.all([
    hijack(client, `/containers/${id}/attach`, { stream: 1, stdin: o.stdin ? 1 : undefined, stdout: 1, stderr: 1 }),
    client.request(`/containers/${id}/wait`, { method: 'POST', query: { condition: o.autoRemove ? 'removed' : 'next-exit' } }),
  ]);
  const waitBody = (async () => {
    const chunks: Buffer[] = [];
    for await (const c of waitRes) chunks.push(c);
    return JSON.parse(Buffer.concat(chunks).toString() || '{}') as { StatusCode: number; Error?: { Message: string } };
  })();
  // process.stdin is touched only when used: opening it keeps a handle that delays exit.
  const stdin = o.stdin ? process.stdin : undefined;
  const rawMode = !!(o.tty && stdin?.isTTY);
  const resize = () => {
    if (process.stdout.isTTY) void client.request(`/containers/${id}/resize`, { method: 'POST', query: { h: process.stdout.rows, w: process.stdout.columns } }).catch(() => undefined);
  };
  // Signals go to the container (docker's sig-proxy); a third one ends the CLI whatever the container does.
  let signals = 0;
  const forward = (signal: string) => {
    if (++signals >= 3) {
      process.stderr.write(`got ${signals} SIGTERM/SIGINTs, forcefully exiting\n`);
      process.exit(1);
    }
    void client.request(`/containers/${id}/kill`, { method: 'POST', query: { signal } }).catch(() => undefined);
  };
  const onSigint = () => forward('SIGINT');
  const onSigterm = () => forward('SIGTERM');
  if (!rawMode) {
    process.on('SIGINT', onSigint);
    process.on('SIGTERM', onSigterm);
  }
  // Read the output from now on: a process that exits at once may end the stream (and close the
  // socket) while the start request is still in flight, and a stream nobody listens to then
  // leaves nothing to keep the CLI alive, so it would exit 0 without the output or the status.
  const output = o.tty
    ? new Promise<void>((r) => {
        socket.pipe(process.stdout, { end: false });
        socket.on('close', r);
        socket.on('end', r);
      })
    : demux(socket, process.stdout, process.stderr);
  try {
    if (o.start) {
      try {
        await client.request(`/containers/${id}/start`, { method: 'POST' });
      } catch (e) {
        // Nothing will run: stop waiting (with --rm, berthd has removed the container already).
        waitRes.destroy();
        void waitBody.catch(() => undefined);
        throw e instanceof ApiError ? new StartError(e.status, e.message, e.reason) : e;
      }
    }
    if (rawMode) stdin!.setRawMode(true);
    if (o.tty) {
      resize();
      process.stdout.on('resize', resize);
    }
    if (stdin) {
      stdin.pipe(socket);
      stdin.on('end', () => socket.end());
    }
    await output;
    const result = await waitBody;
    if (result.Error?.Message) process.stderr.write(`berth: ${result.Error.Message}\n`);
    return result.StatusCode;
  } finally {
    if (rawMode) stdin!.setRawMode(false);
    stdin?.unpipe(socket);
    stdin?.pause();
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigterm);
    process.stdout.off('resize', resize);
    socket.destroy();
  }
}

export async function start({ client, argv, out }: CommandContext): Promise<number> {
  const { values, positionals } = parse(
    argv,
    { attach: { type: 'boolean', short: 'a', help: 'Attach STDOUT/STDERR and forward signals' }, interactive: { type: 'boolean', short: 'i', help: "Attach container's STDIN" } },
    'berth start [OPTIONS] CONTAINER [CONTAINER...]',
    { min: 1 },
  );
  if (values.attach || values.interactive) {
    const info = await client.json(`/containers/${encodeURIComponent(positionals[0])}/json`);
    return attachAndStart(client, info.Id, { tty: !!info.Config.Tty, stdin: !!values.interactive && !!info.Config.OpenStdin, autoRemove: !!info.HostConfig.AutoRemove, start: true });
  }
  return forEach(positionals, out, (c) => client.request(`/containers/${encodeURIComponent(c)}/start`, { method: 'POST' }));
}

export async function attach({ client, argv }: CommandContext): Promise<number> {
  const { values, positionals } = parse(argv, { 'no-stdin': { type: 'boolean', help: 'Do not attach STDIN' } }, 'berth attach [OPTIONS] CONTAINER', { min: 1, max: 1 });
  const info = await client.json(`/containers/${encodeURIComponent(positionals[0])}/json`);
  if (!info.State.Running) throw new ApiError(409, 'You cannot attach to a stopped container, start it first');
  return attachAndStart(client, info.Id, { tty: !!info.Config.Tty, stdin: !values['no-stdin'] && !!info.Config.OpenStdin, autoRemove: false, start: false });
}
