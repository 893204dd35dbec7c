/**
 * Pause and unpause: the container's cgroup frozen and thawed by the isolator that can (the
 * cgroups one). Stopping, killing and removing thaw first: a frozen process ignores even SIGKILL
 * on cgroup v1.
 */
import type { ContainerContext } from './context';
import { isolatorCall } from './isolator-chain';
import type { ContainerRecord } from './record';
import { assertCan, markPaused, markUnpaused } from './state';

export async function pauseContainer(ctx: ContainerContext, ref: string): Promise<void> {
  const rec = ctx.store.get(ref);
  assertCan('pause', rec);
  const iso = ctx.isolatorWith('pause', 'pause');
  await isolatorCall(iso, 'pause', () => iso.impl.pause!(ctx.target(rec)));
  markPaused(rec);
  await ctx.store.save(rec);
  ctx.events.emit('pause', rec.Id);
}

export async function unpauseContainer(ctx: ContainerContext, ref: string): Promise<void> {
  const rec = ctx.store.get(ref);
  assertCan('unpause', rec);
  await thaw(ctx, rec);
  ctx.events.emit('unpause', rec.Id);
}

/** Thaw a paused container (a running one is left as it is). */
export async function thaw(ctx: ContainerContext, rec: ContainerRecord): Promise<void> {
  if (!rec.State.Paused) return;
  const iso = ctx.isolatorWith('resume', 'unpause');
  await isolatorCall(iso, 'resume', () => iso.impl.resume!(ctx.target(rec)));
  markUnpaused(rec);
  await ctx.store.save(rec);
}
