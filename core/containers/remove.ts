/**
 * Removing a container: a running one (with force) is killed and its exit handled here, then the
 * runtime's state, the writable layer, the record, the network attachments and (with `-v` or
 * `--rm`) its anonymous volumes go, and 'destroy' is emitted.
 */
import type { ContainerContext } from './context';
import { IsolatorChain } from './isolator-chain';
import { thaw } from './pause';
import { assertCan, markExited, markRemoving } from './state';
import { waitFor } from './wait';

export interface RemoveOptions {
  force?: boolean;
  volumes?: boolean;
}

export function removeContainer(ctx: ContainerContext, ref: string, opts: RemoveOptions = {}): Promise<void> {
  const rec = ctx.store.get(ref);
  return ctx.serial(rec.Id, () => removeNow(ctx, rec.Id, opts));
}

/** The removal itself, in the container's queue (the caller queues it). */
export async function removeNow(ctx: ContainerContext, id: string, opts: RemoveOptions): Promise<void> {
  const rec = ctx.store.find(id);
  if (!rec) return;
  assertCan('remove', rec, { force: opts.force });
  const stateDir = ctx.store.stateDir(id);
  if (rec.State.Running) {
    await thaw(ctx, rec);
    const exited = waitFor(ctx, id, 'next-exit');
    await ctx
      .runtime()
      .kill(id, stateDir, 'SIGKILL')
      .catch(() => undefined);
    // The exit handler runs in this container's queue, after us: finish its work here.
    const status = await Promise.race([exited.then(() => undefined), ctx.runtime().wait(id, stateDir)]);
    // Whoever waits on this container (an attached `run`) learns how it ended: 137, not 0.
    if (status) markExited(rec, status);
    await new IsolatorChain(ctx.deps.isolators()).cleanup(ctx.target(rec));
  }
  markRemoving(rec);
  await ctx
    .runtime()
    .delete(id, stateDir)
    .catch(() => undefined);
  await ctx.storage().remove(id);
  await ctx.store.delete(id);
  await ctx.deps.networks?.forget(id).catch((e) => ctx.warn('network cleanup failed', id, e));
  // `rm -v` (and `run --rm`, as Docker does) removes the container's anonymous volumes.
  await ctx.deps.volumes?.detach(id, !!opts.volumes || !!rec.HostConfig.AutoRemove);
  ctx.plans.delete(id);
  ctx.health.disarm(id);
  ctx.startTimings.delete(id);
  ctx.execs.dropContainer(id);
  ctx.events.emit('destroy', id, { ...(rec.Config.Labels ?? {}), image: rec.Config.Image, name: rec.Name.replace(/^\//, '') });
}
