/**
 * Watching containers run: each started container's exit is awaited through the runtime and
 * handled once, in the container's queue (isolators cleaned up, rootfs and volumes released,
 * state saved, 'exit' emitted), then AutoRemove or the restart policy acts. After a berthd
 * restart, `recover` adopts the containers that still run and learns how the others ended.
 */
import type { ExitStatus } from '../contracts/runtime';
import type { ContainerContext } from './context';
import { IsolatorChain } from './isolator-chain';
import type { ContainerRecord } from './record';
import { removeNow } from './remove';
import { restartDelay, shouldRestart } from './restart-policy';
import { startNow } from './start';
import { hasStarted, markExited, markRestartDue, markRestartFailed, markRestarting } from './state';

/** Watch every container from its start on ('start' is emitted once its process runs). */
export function monitorExits(ctx: ContainerContext): void {
  ctx.events.on('start', (id: string) => watchExit(ctx, id));
}

function watchExit(ctx: ContainerContext, id: string): void {
  if (ctx.watching.has(id)) return;
  ctx.watching.add(id);
  ctx
    .runtime()
    .wait(id, ctx.store.stateDir(id))
    .then(
      (exit) => ctx.serial(id, () => handleExit(ctx, id, exit)),
      (err) => ctx.serial(id, () => handleExit(ctx, id, { exitCode: 255, signal: null, oomKilled: false, finishedAt: new Date().toISOString(), error: (err as Error).message })),
    )
    .catch((err) => ctx.deps.log.error('exit handling failed', { container: id, error: (err as Error).message }))
    .finally(() => ctx.watching.delete(id));
}

async function handleExit(ctx: ContainerContext, id: string, exit: ExitStatus): Promise<void> {
  const rec = ctx.store.find(id);
  if (!rec) return;
  await new IsolatorChain(ctx.deps.isolators()).cleanup(ctx.target(rec), (err) => ctx.warn('isolator cleanup failed', id, err));
  await ctx.deps
    .storage()
    ?.unmount(id)
    .catch(() => undefined);
  await ctx.deps.volumes?.release(id).catch(() => undefined);
  ctx.health.disarm(id, rec);
  markExited(rec, exit);
  await ctx.store.save(rec);
  ctx.events.emit('exit', id, exit);
  if (rec.HostConfig.AutoRemove && !ctx.restarting.has(id)) await removeNow(ctx, id, { force: true }).catch((err) => ctx.warn('auto-remove failed', id, err));
  else if (shouldRestart(rec, exit.exitCode)) scheduleRestart(ctx, rec);
}

/** Start the container again after the policy's back-off, unless it was started or stopped meanwhile. */
function scheduleRestart(ctx: ContainerContext, rec: ContainerRecord): void {
  markRestarting(rec);
  setTimeout(() => {
    const current = ctx.store.find(rec.Id);
    if (!current || current.State.Running || current.ManuallyStopped) return;
    markRestartDue(current);
    ctx
      .serial(current.Id, () => startNow(ctx, current.Id))
      .catch((err) => {
        ctx.warn('restart failed', current.Id, err);
        markRestartFailed(current);
      });
  }, restartDelay(rec)).unref();
}

/** Re-adopt containers after a berthd restart: running ones are watched again, exits learnt. */
export async function recover(ctx: ContainerContext): Promise<void> {
  const runtime = ctx.deps.runtime();
  const live: string[] = [];
  for (const rec of ctx.store.list()) {
    if (!rec.State.Running || !runtime) continue;
    const state = await runtime.state(rec.Id, ctx.store.stateDir(rec.Id));
    if (state.status === 'running') {
      live.push(rec.Id);
      watchExit(ctx, rec.Id);
      ctx.health.arm(rec, false);
    } else {
      const exit = state.exit ?? { exitCode: 255, signal: null, oomKilled: false, finishedAt: new Date().toISOString(), error: 'the container ended while berthd was down and left no exit status' };
      await ctx.serial(rec.Id, () => handleExit(ctx, rec.Id, exit));
    }
  }
  await ctx.deps.storage()?.recover?.(live);
  // Running containers keep their rootfs mounted; count the mount so stop releases it.
  for (const id of live)
    await ctx.deps
      .storage()
      ?.mount(id)
      .catch(() => undefined);
  // Containers whose policy says so come back with the daemon.
  for (const rec of ctx.store.list()) {
    if (!rec.State.Running && shouldRestart(rec, rec.State.ExitCode, true) && hasStarted(rec)) {
      ctx.serial(rec.Id, () => startNow(ctx, rec.Id)).catch((err) => ctx.warn('restart at daemon start failed', rec.Id, err));
    }
  }
}
