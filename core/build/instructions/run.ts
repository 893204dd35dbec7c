/**
 * RUN: a real container (create/start/wait of the container manager, with the step's env,
 * workdir, user and SHELL) whose output is streamed and whose diff is committed as a layer.
 */
import type { Readable } from 'node:stream';
import { PassThrough } from 'node:stream';
import * as tar from 'tar-stream';
import { CanceledError } from '../../contracts/errors';
import { storeLayer } from '../../images/store-layer';
import { readLogs } from '../../containers/logs';
import { envValue } from '../args';
import { type Instruction, DockerfileError } from '../dockerfile';
import { BuildError } from '../errors';
import { type StageState, type StepContext, shellOf } from '../step';

/** Mount points the launcher makes in a container's writable layer; not part of a RUN's layer. */
const INIT_PATHS = ['/dev', '/proc', '/sys', '/etc/hostname', '/etc/hosts', '/etc/resolv.conf'];

export async function runStep(ctx: StepContext, state: StageState, ins: Instruction): Promise<void> {
  if (Object.keys(ins.flags).length) throw new BuildError(`RUN --${Object.keys(ins.flags)[0]} needs BuildKit; berth's builder is the classic one`);
  const cmd = ins.json ?? [...shellOf(state), ins.args];
  if (!cmd.length) throw new DockerfileError(ctx.dockerfile.file, ins.line, 'RUN requires at least one argument');
  const argEnv = argEnvOf(state);
  const createdBy = (argEnv.length ? `|${argEnv.length} ${argEnv.join(' ')} ` : '') + cmd.join(' ');
  await ctx.commit(state, ['RUN', JSON.stringify(cmd), JSON.stringify(argEnv)], async () => {
    const imageId = await ctx.materialize(state);
    const c = state.config.config ?? {};
    const containers = ctx.deps.containers;
    const { Id } = await containers.create({
      Image: imageId,
      Cmd: cmd,
      Entrypoint: [],
      Env: [...(c.Env ?? []), ...argEnv],
      WorkingDir: c.WorkingDir ?? '',
      User: c.User ?? '',
      Labels: {},
      HostConfig: { ExtraHosts: ctx.opts.extraHosts ?? [], ...(ctx.opts.networkMode ? { NetworkMode: ctx.opts.networkMode } : {}) },
    });
    ctx.progress.runningIn(Id);
    const rm = ctx.opts.rm !== false;
    let ok = false;
    try {
      const code = await runContainer(ctx, Id);
      if (code !== 0) throw new BuildError(`The command '${cmd.join(' ')}' returned a non-zero code: ${code}`, code);
      const layer = await storeLayer(ctx.deps.content, await runDiff(ctx, Id));
      ok = true;
      return { containerConfig: structuredClone(c), createdBy, layer };
    } finally {
      if ((ok && rm) || (!ok && (rm || ctx.opts.forceRm))) {
        await containers.remove(Id, { force: true }).catch((err) => ctx.deps.log.warn('removing an intermediate container failed', { id: Id, error: (err as Error).message }));
        if (ok) ctx.progress.removedContainer(Id);
      }
    }
  });
}

/** Build args in scope and not shadowed by ENV: the env a RUN gets on top of the config's. */
function argEnvOf(state: StageState): string[] {
  const env = state.config.config?.Env ?? [];
  const out: string[] = [];
  for (const [k, v] of [...state.args.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    if (v === undefined || envValue(env, k) !== undefined) continue;
    out.push(`${k}=${v}`);
  }
  return out;
}

/** Start the container, stream its output, and resolve with its exit code. */
async function runContainer(ctx: StepContext, id: string): Promise<number> {
  const containers = ctx.deps.containers;
  const exited = containers.waitFor(id, 'next-exit');
  let live = true;
  const stop = new AbortController();
  const onAbort = () => containers.kill(id, 'SIGKILL').catch(() => undefined);
  ctx.opts.signal?.addEventListener('abort', onAbort);
  let pump: Promise<void> | undefined;
  try {
    await containers.start(id);
    const logFile = containers.logPath(id);
    pump = (async () => {
      for await (const entry of readLogs(logFile, { stdout: true, stderr: true, follow: true, isLive: () => live, signal: stop.signal })) {
        ctx.progress.runOutput(entry.stream, entry.log);
      }
    })();
    const status = await exited;
    live = false;
    await pump;
    if (ctx.opts.signal?.aborted) throw new CanceledError('build cancelled: the client went away');
    return status.StatusCode;
  } catch (err) {
    live = false;
    stop.abort();
    await pump?.catch(() => undefined);
    throw err;
  } finally {
    ctx.opts.signal?.removeEventListener('abort', onAbort);
  }
}

/** The container's diff without the mount points the launcher made (Docker keeps those in an init layer). */
async function runDiff(ctx: StepContext, id: string): Promise<Readable> {
  const storage = ctx.layers.storage();
  const added = new Set((await storage.changes(id)).filter((c) => c.kind === 'A' && INIT_PATHS.some((p) => c.path === p || c.path.startsWith(p + '/'))).map((c) => c.path));
  const diff = await storage.diff(id);
  if (!added.size) return diff;
  return filterTar(diff, (name) => added.has('/' + name.replace(/^\.?\/+/, '').replace(/\/+$/, '')));
}

/** Copy a tar stream, leaving out the entries `drop` names. */
function filterTar(input: Readable, drop: (name: string) => boolean): Readable {
  const extract = tar.extract();
  const pack = tar.pack();
  const out = new PassThrough();
  (async () => {
    for await (const entry of extract) {
      if (drop(entry.header.name)) {
        entry.resume();
        continue;
      }
      await new Promise<void>((resolve, reject) => {
        const sink = pack.entry(entry.header, (err) => (err ? reject(err) : resolve()));
        entry.pipe(sink as unknown as NodeJS.WritableStream);
      });
    }
    pack.finalize();
  })().catch((err) => {
    pack.destroy(err);
    out.destroy(err);
  });
  input.on('error', (err) => extract.destroy(err));
  input.pipe(extract);
  pack.pipe(out);
  return out;
}
