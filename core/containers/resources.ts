/**
 * A container's resources as its isolators see them: its processes (top), its usage figures
 * (stats), and new limits for it (update).
 */
import type { ContainerContext } from './context';
import { isolatorCall } from './isolator-chain';
import type { HostConfigSpec } from './record';
import { assertCan } from './state';

/** Host pids of the container's processes. */
export async function pidsOf(ctx: ContainerContext, ref: string): Promise<number[]> {
  const rec = ctx.store.get(ref);
  assertCan('top', rec);
  const iso = ctx.deps.isolators().find((i) => i.impl.pids);
  return iso ? await iso.impl.pids!(ctx.target(rec)) : [rec.State.Pid];
}

/** Raw resource figures from every isolator that reports them, merged. */
export async function rawStatsOf(ctx: ContainerContext, ref: string): Promise<Record<string, unknown>> {
  const rec = ctx.store.get(ref);
  const out: Record<string, unknown> = {};
  if (!rec.State.Running) return out;
  for (const iso of ctx.deps.isolators()) if (iso.impl.stats) Object.assign(out, await iso.impl.stats(ctx.target(rec)));
  return out;
}

/** POST /containers/{id}/update: new limits for a running (or stopped) container. */
export async function updateResources(ctx: ContainerContext, ref: string, resources: Record<string, unknown>): Promise<string[]> {
  const rec = ctx.store.get(ref);
  const { RestartPolicy, ...limits } = resources as { RestartPolicy?: HostConfigSpec['RestartPolicy'] } & Record<string, unknown>;
  if (rec.State.Running && Object.keys(limits).length) {
    const iso = ctx.isolatorWith('update', 'update');
    await isolatorCall(iso, 'update', () => iso.impl.update!(ctx.target(rec), limits));
  }
  Object.assign(rec.HostConfig, limits, RestartPolicy ? { RestartPolicy } : {});
  await ctx.store.save(rec);
  return [];
}
