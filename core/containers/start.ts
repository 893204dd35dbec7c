/**
 * Starting a container: the launch sequence of DESIGN.md section 5. The storage driver mounts the
 * rootfs, the launch plan is made from the record (user, env, links, log rotation, volumes), the
 * isolators add their parts in config order, the runtime clones the process and execs it once
 * the isolators have attached. A failed start undoes what ran and leaves the container as it was.
 */
import { InvalidArgumentError } from '../contracts/errors';
import type { IsolationTarget } from '../contracts/isolator';
import { initBinary } from '../launcher/binary';
import { newLaunchPlan } from '../launcher/plan';
import { writeJsonAtomic } from '../util/fs';
import { parseMounts } from '../volumes/mounts';
import type { ContainerContext } from './context';
import { mergeEnv } from './env';
import { IsolatorChain } from './isolator-chain';
import { linkSetup } from './links';
import { checkLogConfig } from './log-config';
import { removeNow } from './remove';
import { assertCan, markStartFailed, markStarted } from './state';
import { ensureWorkingDir, resolveUser } from './user';

const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Start a created or exited container; starting a running one does nothing (Docker's 304). */
export function startContainer(ctx: ContainerContext, ref: string): Promise<void> {
  const rec = ctx.store.get(ref);
  rec.ManuallyStopped = false;
  return ctx.serial(rec.Id, () => startNow(ctx, rec.Id));
}

/** The launch sequence, in the container's queue (the caller queues it). */
export async function startNow(ctx: ContainerContext, id: string): Promise<void> {
  const rec = ctx.store.get(id);
  assertCan('start', rec);
  if (rec.State.Running) return; // Docker answers 304: already started
  const storage = ctx.storage();
  const runtime = ctx.runtime();
  const stateDir = ctx.store.stateDir(id);
  // Isolators see host-path binds only: volumes, --mount and --tmpfs come in through the plan.
  const binds = ctx.deps.volumes ? parseMounts({ Binds: rec.HostConfig.Binds }, []).binds : rec.HostConfig.Binds;
  const links = linkSetup(
    rec,
    (n) => ctx.store.find(n),
    (cid) => ctx.deps.networks?.settings(cid).IPAddress,
  );
  const extraHosts = [...((rec.HostConfig.ExtraHosts as string[] | null) ?? []), ...links.hosts];
  const target: IsolationTarget = { containerId: id, stateDir, hostConfig: { ...rec.HostConfig, Binds: binds, Hostname: rec.Config.Hostname, ExtraHosts: extraHosts } };
  const chain = new IsolatorChain(ctx.deps.isolators());
  let mounted = false;
  const startedAt = performance.now();
  try {
    // 1. The storage driver prepares the rootfs.
    const rootfs = await storage.mount(id, { ephemeral: !!rec.HostConfig.AutoRemove });
    mounted = true;
    const mountedAt = performance.now();
    const user = await resolveUser(rootfs, rec.Config.User, (rec.HostConfig.GroupAdd as string[] | null) ?? []);
    await ensureWorkingDir(rootfs, rec.Process.cwd || '/');
    const plan = newLaunchPlan(
      rootfs,
      {
        args: [rec.Path, ...rec.Args],
        // Link variables first: the container's own env wins over them, as in Docker.
        env: withDefaults(mergeEnv(links.env, rec.Process.env), rec.Config.Hostname!, !!rec.Config.Tty, user.home),
        cwd: rec.Process.cwd || '/',
        uid: user.uid,
        gid: user.gid,
        additionalGids: user.additionalGids,
        terminal: !!rec.Config.Tty,
        ...consoleSize(rec.HostConfig.ConsoleSize),
        openStdin: !!rec.Config.OpenStdin,
        stdinOnce: !!rec.Config.StdinOnce,
      },
      rec.Config.Hostname,
    );
    plan.sessionKeyring = `_ses.${id}`;
    const logRotation = checkLogConfig(ctx.logConfigOf(rec), (key, msg) => new InvalidArgumentError(`log-opt ${key}: ${msg}`));
    if (!logRotation)
      plan.logPath = '/dev/null'; // the none driver
    else if (logRotation.maxSize) plan.logRotation = { maxSize: logRotation.maxSize, maxFiles: logRotation.maxFiles };
    if (ctx.deps.volumes) plan.mounts.push(...(await ctx.deps.volumes.planMounts(id, rootfs)));
    // 2. Each isolator, in config order: host-side setup, then its part of the plan.
    await chain.prepare(target, plan);
    // --init: a minimal reaper at pid 1, bound in after the isolators' /dev mounts.
    if (rec.HostConfig.Init) {
      plan.mounts.push({ destination: '/dev/init', type: 'bind', source: initBinary(), options: ['bind', 'ro', 'nosuid', 'nodev'] });
      plan.process.args = ['/dev/init', '--', ...plan.process.args];
    }
    // 3-5. The launcher clones the child; while it waits, isolators attach; then it execs.
    const launchAt = performance.now();
    const proc = await runtime.start(id, stateDir, plan, {
      attach: async (pid) => {
        await chain.attach(target, pid);
        const socket = runtime.attachSocket?.(id, stateDir);
        if (socket) for (const fn of ctx.earlyAttach.get(id) ?? []) fn(socket);
        ctx.earlyAttach.delete(id);
      },
    });
    await chain.started(target, proc.pid);
    const done = performance.now();
    ctx.startTimings.set(id, { 'storage mount': mountedAt - startedAt, 'plan and setup': launchAt - mountedAt, ...chain.timings, 'runtime start': done - launchAt, 'total start': done - startedAt });
    // Exec sessions join with the same capabilities, env and cgroups: keep the plan.
    ctx.plans.set(id, plan);
    // Only for this run (exec sessions after a berthd restart): a reboot ends the container anyway.
    await writeJsonAtomic(ctx.launchPlanPath(id), plan, 'atomic');
    markStarted(rec, proc.pid, proc.startedAt);
    ctx.health.arm(rec, true);
    await ctx.store.save(rec);
    ctx.events.emit('start', id); // the monitor watches for the exit from here on
  } catch (err) {
    await chain.cleanup(target);
    if (mounted) await storage.unmount(id).catch(() => undefined);
    markStartFailed(rec, err);
    await ctx.store.save(rec).catch(() => undefined);
    ctx.earlyAttach.delete(id);
    // Docker removes an AutoRemove container whose start failed: `run --rm` leaves nothing.
    if (rec.HostConfig.AutoRemove) await removeNow(ctx, id, { force: true }).catch((e) => ctx.warn('auto-remove failed', id, e));
    throw err;
  }
}

/** HostConfig.ConsoleSize is [height, width]; [0, 0] (what clients send without a terminal) means none. */
function consoleSize(size: unknown): { consoleSize?: { rows: number; cols: number } } {
  const [rows, cols] = Array.isArray(size) ? (size as number[]) : [];
  return rows > 0 && cols > 0 ? { consoleSize: { rows, cols } } : {};
}

function withDefaults(env: string[], hostname: string, tty: boolean, home: string): string[] {
  const keys = new Set(env.map((e) => e.split('=')[0]));
  const out = [...env];
  if (!keys.has('PATH')) out.unshift(DEFAULT_PATH);
  if (!keys.has('HOSTNAME')) out.push(`HOSTNAME=${hostname}`);
  if (tty && !keys.has('TERM')) out.push('TERM=xterm');
  if (!keys.has('HOME')) out.push(`HOME=${home}`);
  return out;
}
