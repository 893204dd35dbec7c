/**
 * Stopping a container: kill (a signal), stop (the stop signal, then SIGKILL after a timeout),
 * restart (stop, then start). Each marks the container manually stopped, which ends its restart
 * policy until it is started again.
 */
import { ConflictError } from '../contracts/errors';
import type { ContainerContext } from './context';
import { thaw } from './pause';
import { startContainer } from './start';
import { assertCan } from './state';
import { waitFor } from './wait';

const DEFAULT_STOP_TIMEOUT = 10;

export async function killContainer(ctx: ContainerContext, ref: string, signal: string | number = 'SIGKILL'): Promise<void> {
  const rec = ctx.store.get(ref);
  assertCan('kill', rec, { ref });
  rec.ManuallyStopped = true;
  await thaw(ctx, rec);
  // dockerd answers a SIGKILL only once the container has stopped (10 s at most), so a
  // `docker kill` followed by `docker inspect` sees the exit; other signals return at once.
  const isKill = ['SIGKILL', 'KILL', '9'].includes(String(signal).toUpperCase());
  const exited = isKill ? waitFor(ctx, rec.Id, 'not-running') : undefined;
  await ctx.runtime().kill(rec.Id, ctx.store.stateDir(rec.Id), signal);
  ctx.events.emit('kill', rec.Id);
  if (exited) await Promise.race([exited.catch(() => undefined), new Promise((r) => setTimeout(r, 10_000).unref())]);
}

/** SIGTERM (or the image's StopSignal), then SIGKILL after `timeout` seconds; false if it was not running. */
export async function stopContainer(ctx: ContainerContext, ref: string, timeout?: number, signal?: string): Promise<boolean> {
  const rec = ctx.store.get(ref);
  if (!rec.State.Running) return false;
  rec.ManuallyStopped = true;
  await thaw(ctx, rec);
  const exited = waitFor(ctx, rec.Id, 'not-running');
  const t = timeout ?? rec.Config.StopTimeout ?? DEFAULT_STOP_TIMEOUT;
  try {
    await ctx.runtime().kill(rec.Id, ctx.store.stateDir(rec.Id), signal || rec.Config.StopSignal || 'SIGTERM');
  } catch (err) {
    if (!(err instanceof ConflictError)) throw err;
  }
  const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), Math.max(0, t) * 1000).unref());
  if ((await Promise.race([exited, timer])) === 'timeout') {
    await ctx
      .runtime()
      .kill(rec.Id, ctx.store.stateDir(rec.Id), 'SIGKILL')
      .catch(() => undefined);
    await exited;
  }
  ctx.events.emit('stop', rec.Id);
  return true;
}

/** Stop and start again; a `--rm` container is not removed in between (as in Docker). */
export async function restartContainer(ctx: ContainerContext, ref: string, timeout?: number): Promise<void> {
  const id = ctx.store.get(ref).Id;
  ctx.restarting.add(id);
  try {
    await stopContainer(ctx, id, timeout);
  } finally {
    ctx.restarting.delete(id);
  }
  await startContainer(ctx, id);
}
