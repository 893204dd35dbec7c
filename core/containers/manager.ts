/**
 * Containers: create (record + writable layer), start (the launch sequence of DESIGN.md section
 * 5), stop/kill/restart, wait, remove, logs, attach, export, diff, and re-adoption of running
 * containers when berthd restarts. Exits are observed through the runtime and fan out as events.
 */
import { EventEmitter } from 'node:events';
import type * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import type { Logger } from '../contracts/types';
import { BerthError, CanceledError, ConflictError, InvalidArgumentError, NotImplementedError, StateError } from '../contracts/errors';
import type { Isolator, IsolationTarget } from '../contracts/isolator';
import type { LaunchPlan } from '../contracts/launch';
import type { ExitStatus, Runtime } from '../contracts/runtime';
import type { Change, StorageDriver } from '../contracts/storage';
import type { LayerUnpacker } from '../images/pull';
import type { ImageService } from '../images/service';
import type { ImageRecord } from '../images/store';
import { initBinary } from '../launcher/binary';
import { newLaunchPlan } from '../launcher/plan';
import { diffTrees } from '../layers/tree';
import { writeLayerTar } from '../layers/write';
import type { EndpointRequest, NetworkManager } from '../networks/manager';
import { humanDuration } from '../util/format';
import { readJson, writeJsonAtomic } from '../util/fs';
import { connectUnix } from '../util/unix-socket';
import { type ContainerMount, type VolumeManager, parseBind, parseMounts } from '../volumes/manager';
import { mergeEnv } from './env';
import { type ExecConfig, ExecSessions } from './exec';
import { DEFAULT_LOG_DRIVER, type LogConfig, checkLogConfig, resolveLogConfig } from './log-config';
import { type ContainerConfigSpec, type ContainerRecord, ContainerStore, type HostConfigSpec, initialState } from './record';
import { type HealthConfig, HealthMonitor, healthSuffix, mergeHealthcheck } from './health';
import { validateHostConfig } from './host-config';
import { IsolatorChain, type NamedIsolator, isolatorCall } from './isolator-chain';
import { linkSetup, namesOf, normalizeLinks, withoutLink } from './links';
import { ensureWorkingDir, resolveUser } from './user';
import { assertCan } from './state';

export const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const DEFAULT_STOP_TIMEOUT = 10;
/** Mount points the launcher creates in a container's writable layer. */
const INIT_PATHS = ['/dev', '/proc', '/sys', '/etc/hostname', '/etc/hosts', '/etc/resolv.conf', '/dev/shm', '/dev/pts', '/dev/mqueue'];

export interface CreateRequest extends ContainerConfigSpec {
  HostConfig?: HostConfigSpec;
  NetworkingConfig?: { EndpointsConfig?: Record<string, EndpointRequest> | null };
  /** Config.MacAddress (API < 1.44): the MAC of the container's interface on its first network. */
  MacAddress?: string;
}

export interface ManagerDeps {
  root: string;
  store: ContainerStore;
  images: ImageService;
  storage: () => StorageDriver | undefined;
  runtime: () => Runtime | undefined;
  isolators: () => NamedIsolator[];
  unpacker: () => LayerUnpacker | undefined;
  missing: (type: string) => string;
  log: Logger;
  /** Networks (bridges, published ports, DNS) and volumes; absent in tests that need neither. */
  networks?: NetworkManager;
  volumes?: VolumeManager;
  /** The daemon's log driver and options (config `logDriver`, `logOpts`); default json-file. */
  logConfig?: LogConfig;
}

export type WaitCondition = 'not-running' | 'next-exit' | 'removed';

/** Events: 'exit' (id, status), 'start' (id), 'destroy' (id), 'create' (id) — also fed to /events. */
export class ContainerManager extends EventEmitter {
  private readonly store: ContainerStore;
  /** Containers whose exit is being watched, so each exit is handled once. */
  private readonly watching = new Set<string>();
  /** Containers being restarted: their exit must not trigger AutoRemove. */
  private readonly restarting = new Set<string>();
  /** Launch plans of running containers (exec derives its plan from them). */
  private readonly plans = new Map<string, LaunchPlan>();
  readonly execs: ExecSessions;
  private readonly health: HealthMonitor;
  /** Serialises lifecycle operations per container. */
  private readonly busy = new Map<string, Promise<unknown>>();

  constructor(private readonly deps: ManagerDeps) {
    super();
    this.setMaxListeners(0);
    this.store = deps.store;
    this.execs = new ExecSessions(deps.root);
    this.health = new HealthMonitor({
      find: (id) => this.store.find(id),
      update: (rec, change) => this.store.update(rec, change),
      execCreate: (id, config) => this.execCreate(id, config),
      execStart: (execId, beforeExec) => this.execStart(execId, beforeExec),
      execForget: (execId) => this.execs.forget(execId),
      emit: (id, status) => this.emit('health_status', id, status),
      log: deps.log,
    });
  }

  open(): Promise<void> {
    return this.store.open();
  }

  private storage(): StorageDriver {
    const s = this.deps.storage();
    if (!s) throw new BerthError(`no storage driver: ${this.deps.missing('storage')}`);
    return s;
  }

  private runtime(): Runtime {
    const r = this.deps.runtime();
    if (!r) throw new BerthError(`no runtime: ${this.deps.missing('runtime')}`);
    return r;
  }

  private serial<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.busy.get(id) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    this.busy.set(id, next.catch(() => undefined));
    return next;
  }

  get(ref: string): ContainerRecord {
    return this.store.get(ref);
  }

  list(): ContainerRecord[] {
    return this.store.list();
  }

  /** Image IDs in use by containers (an image in use cannot be deleted). */
  usersOf(imageId: string): string[] {
    return this.store.list().filter((c) => c.Image === imageId).map((c) => c.Id);
  }

  // ---- create ------------------------------------------------------------------------------

  async create(req: CreateRequest, name?: string): Promise<{ Id: string; Warnings: string[] }> {
    const id = this.store.newId();
    try {
      return await this.createNow(id, req, name);
    } finally {
      // Saved, the record holds the name; failed, the name is free again.
      this.store.releaseName(id);
    }
  }

  private async createNow(id: string, req: CreateRequest, name?: string): Promise<{ Id: string; Warnings: string[] }> {
    if (!req || typeof req !== 'object') throw new InvalidArgumentError('config cannot be empty in order to create a container');
    if (!req.Image) throw new InvalidArgumentError('Config.Image is required');
    const image = this.deps.images.store.resolve(req.Image);
    const imageConfig = (await this.deps.images.config(image)).config ?? {};
    const storage = this.storage();
    await this.ensureUnpacked(image);

    const recName = this.store.reserveName(name, id);
    const runtime = this.deps.runtime()?.name ?? '';
    const hostConfig: HostConfigSpec = { NetworkMode: 'default', ...(req.HostConfig ?? {}) };
    // `container:<name or id prefix>` modes are stored with the full id, as dockerd does.
    for (const key of ['NetworkMode', 'IpcMode', 'UTSMode'] as const) {
      const mode = hostConfig[key];
      if (typeof mode === 'string' && mode.startsWith('container:')) hostConfig[key] = `container:${this.store.get(mode.slice('container:'.length)).Id}`;
    }
    // docker-py's create_container(runtime=...) sends Runtime beside the Config, not in HostConfig.
    const configRuntime = (req as { Runtime?: unknown }).Runtime;
    if (!hostConfig.Runtime && typeof configRuntime === 'string') hostConfig.Runtime = configRuntime;
    validateHostConfig(hostConfig, { networks: !!this.deps.networks, volumes: !!this.deps.volumes, runtime });
    hostConfig.Runtime ||= runtime;
    if (hostConfig.Links) hostConfig.Links = normalizeLinks(hostConfig.Links as string[], recName, (n) => !!this.store.find(n));
    hostConfig.LogConfig = resolveLogConfig(hostConfig.LogConfig, this.daemonLogConfig());
    checkLogConfig(hostConfig.LogConfig, (key, msg) => new InvalidArgumentError(key === 'Type' ? msg : `log-opt ${key}: ${msg}`));
    // Networks and volumes are checked before anything exists: a port conflict leaves no container.
    const exposed = Object.keys({ ...(imageConfig.ExposedPorts ?? {}), ...(req.ExposedPorts ?? {}) });
    const netConfig = await this.deps.networks?.configure(id, hostConfig, req.NetworkingConfig?.EndpointsConfig ?? undefined, exposed, req.MacAddress || undefined);
    // Config.Volumes of the request (`-v /path` as docker-py sends it) add to the image's VOLUMEs.
    const volumeTargets = Object.keys({ ...(imageConfig.Volumes ?? {}), ...(req.Volumes ?? {}) });
    const volumeMounts = this.deps.volumes ? this.withVolumesFrom(hostConfig, parseMounts(hostConfig, volumeTargets)) : [];
    const entrypoint = req.Entrypoint !== undefined && req.Entrypoint !== null ? req.Entrypoint : (imageConfig.Entrypoint ?? []);
    const cmd = req.Cmd?.length ? req.Cmd : req.Entrypoint !== undefined && req.Entrypoint !== null ? [] : (imageConfig.Cmd ?? []);
    const argv = [...(entrypoint ?? []), ...(cmd ?? [])];
    if (!argv.length) throw new InvalidArgumentError('no command specified');
    const configEnv = mergeEnv(imageConfig.Env ?? [], req.Env ?? [], { keepUnset: true });
    const env = configEnv.filter((e) => e.includes('='));
    const config: ContainerConfigSpec = {
      ...req,
      Hostname: req.Hostname || (hostConfig.UTSMode === 'host' ? os.hostname() : id.slice(0, 12)),
      Env: configEnv,
      Cmd: cmd,
      Entrypoint: entrypoint?.length ? entrypoint : null,
      Image: req.Image,
      WorkingDir: req.WorkingDir || imageConfig.WorkingDir || '',
      // An empty string (docker run without -u) means the image's user, as in Docker.
      User: req.User || imageConfig.User || '',
      Labels: { ...(imageConfig.Labels ?? {}), ...(req.Labels ?? {}) },
      StopSignal: req.StopSignal ?? imageConfig.StopSignal,
      Healthcheck: mergeHealthcheck(imageConfig.Healthcheck as HealthConfig | undefined, req.Healthcheck),
    };
    if (!config.Healthcheck) delete config.Healthcheck;
    if (volumeTargets.length) config.Volumes = Object.fromEntries(volumeTargets.map((v) => [v, {}]));
    delete (config as { Runtime?: unknown }).Runtime;
    delete (config as { HostConfig?: unknown }).HostConfig;
    delete (config as { NetworkingConfig?: unknown }).NetworkingConfig;
    if (exposed.length) config.ExposedPorts = Object.fromEntries(exposed.map((p) => [p, {}]));
    const top = image.chainIds[image.chainIds.length - 1] ?? null;
    const rec: ContainerRecord = {
      Id: id,
      Name: recName,
      Created: new Date().toISOString(),
      Image: image.id,
      TopLayer: top,
      Path: argv[0],
      Args: argv.slice(1),
      Config: config,
      HostConfig: hostConfig,
      State: initialState(),
      RestartCount: 0,
      Driver: storage.name,
      Process: { env, cwd: config.WorkingDir || '/', user: config.User || '' },
    };
    await storage.create(id, top);
    try {
      await this.store.save(rec);
      if (netConfig) await this.deps.networks!.save(netConfig);
      if (this.deps.volumes) await this.deps.volumes.attach(id, volumeMounts, (hostConfig.VolumeDriver as string | undefined) || undefined);
    } catch (err) {
      await this.deps.networks?.forget(id).catch(() => undefined);
      await this.deps.volumes?.detach(id, true).catch(() => undefined);
      await this.store.delete(id).catch(() => undefined);
      await storage.remove(id).catch(() => undefined);
      throw err;
    }
    this.emit('create', id);
    return { Id: id, Warnings: [] };
  }

  /**
   * HostConfig.VolumesFrom (`container[:ro|:rw]`): the new container also gets every volume and
   * bind of those containers, at the same paths, read-only if the source had it so or `:ro` says
   * so; its own mounts win where a path is taken, as in dockerd.
   */
  private withVolumesFrom(hostConfig: HostConfigSpec, own: { binds: string[]; mounts: ContainerMount[] }): ContainerMount[] {
    const from = hostConfig.VolumesFrom as unknown;
    if (from === undefined || from === null) return own.mounts;
    if (!Array.isArray(from) || from.some((f) => typeof f !== 'string')) throw new InvalidArgumentError('HostConfig.VolumesFrom: expected a list of "container[:ro|:rw]"');
    const taken = new Set([...own.binds.map((b) => path.posix.normalize(b.split(':')[1]).replace(/\/$/, '')), ...own.mounts.map((m) => m.Target)]);
    const mounts = [...own.mounts];
    for (const entry of from as string[]) {
      const [ref, mode = '', extra] = entry.split(':');
      if (extra !== undefined || !['', 'ro', 'rw'].includes(mode)) throw new InvalidArgumentError(`HostConfig.VolumesFrom: invalid mode in ${JSON.stringify(entry)} (ro or rw)`);
      const source = this.store.get(ref);
      const binds = parseMounts({ Binds: source.HostConfig.Binds }, []).binds.map((b): ContainerMount => {
        const bind = parseBind(b);
        return { Type: 'bind', Source: bind.source, Target: bind.target, ReadOnly: bind.readOnly, Options: [bind.propagation] };
      });
      for (const m of [...binds, ...this.deps.volumes!.mountsOf(source.Id)]) {
        if (taken.has(m.Target)) continue;
        taken.add(m.Target);
        mounts.push({ ...m, ReadOnly: mode ? mode === 'ro' : m.ReadOnly });
      }
    }
    return mounts;
  }

  /** DELETE /containers/{me}/{alias}?link=1: drop the link, keep both containers. */
  async removeLink(linkName: string): Promise<void> {
    const name = linkName.startsWith('/') ? linkName : `/${linkName}`;
    if (name.lastIndexOf('/') === 0) throw new ConflictError('Conflict, cannot remove the default link name of the container');
    const parent = this.store.get(name.slice(0, name.lastIndexOf('/')));
    parent.HostConfig.Links = withoutLink(parent, name);
    await this.store.save(parent);
  }

  /** Layers are unpacked at pull; after a storage driver switch they are unpacked again here. */
  private async ensureUnpacked(image: ImageRecord): Promise<void> {
    const storage = this.storage();
    const missing = [];
    for (const c of image.chainIds) if (!(await storage.hasLayer(c))) missing.push(c);
    if (!missing.length) return;
    const unpacker = this.deps.unpacker();
    if (!unpacker) throw new BerthError('no layer unpacker configured');
    await unpacker.unpack(
      image.layers.map((blob, i) => ({ blob, diffId: image.diffIds[i], chainId: image.chainIds[i], parent: i ? image.chainIds[i - 1] : null })),
      () => undefined,
    );
  }

  // ---- start -------------------------------------------------------------------------------

  /** Per-phase milliseconds of each container's last start, keyed `<isolator uri> <phase>`. */
  private readonly startTimings = new Map<string, Record<string, number>>();

  timings(ref: string): Record<string, number> {
    return { ...(this.startTimings.get(this.store.get(ref).Id) ?? {}) };
  }

  /** Callers that want the process's output from its first byte connect here before it execs. */
  private readonly earlyAttach = new Map<string, ((socketPath: string) => void)[]>();

  onBeforeExec(id: string, fn: (socketPath: string) => void): () => void {
    const list = this.earlyAttach.get(id) ?? [];
    list.push(fn);
    this.earlyAttach.set(id, list);
    return () => this.earlyAttach.set(id, (this.earlyAttach.get(id) ?? []).filter((f) => f !== fn));
  }

  start(ref: string): Promise<void> {
    const rec = this.store.get(ref);
    rec.ManuallyStopped = false;
    return this.serial(rec.Id, () => this.startNow(rec.Id));
  }

  private async startNow(id: string): Promise<void> {
    const rec = this.store.get(id);
    assertCan('start', rec);
    if (rec.State.Running) return; // Docker answers 304: already started
    const storage = this.storage();
    const runtime = this.runtime();
    const stateDir = this.store.stateDir(id);
    // Isolators see host-path binds only: volumes, --mount and --tmpfs come in through the plan.
    const binds = this.deps.volumes ? parseMounts({ Binds: rec.HostConfig.Binds }, []).binds : rec.HostConfig.Binds;
    const links = linkSetup(rec, (n) => this.store.find(n), (cid) => this.deps.networks?.settings(cid).IPAddress);
    const extraHosts = [...((rec.HostConfig.ExtraHosts as string[] | null) ?? []), ...links.hosts];
    const target: IsolationTarget = { containerId: id, stateDir, hostConfig: { ...rec.HostConfig, Binds: binds, Hostname: rec.Config.Hostname, ExtraHosts: extraHosts } };
    const chain = new IsolatorChain(this.deps.isolators());
    let mounted = false;
    const startedAt = performance.now();
    try {
      // 1. The storage driver prepares the rootfs.
      const rootfs = await storage.mount(id);
      mounted = true;
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
      const logRotation = checkLogConfig(this.logConfigOf(rec), (key, msg) => new InvalidArgumentError(`log-opt ${key}: ${msg}`));
      if (!logRotation) plan.logPath = '/dev/null'; // the none driver
      else if (logRotation.maxSize) plan.logRotation = { maxSize: logRotation.maxSize, maxFiles: logRotation.maxFiles };
      if (this.deps.volumes) plan.mounts.push(...(await this.deps.volumes.planMounts(id, rootfs)));
      // 2. Each isolator, in config order: host-side setup, then its part of the plan.
      await chain.prepare(target, plan);
      // --init: a minimal reaper at pid 1, bound in after the isolators' /dev mounts.
      if (rec.HostConfig.Init) {
        plan.mounts.push({ destination: '/dev/init', type: 'bind', source: initBinary(), options: ['bind', 'ro', 'nosuid', 'nodev'] });
        plan.process.args = ['/dev/init', '--', ...plan.process.args];
      }
      // 3-5. The launcher clones the child; while it waits, isolators attach; then it execs.
      const proc = await runtime.start(id, stateDir, plan, {
        attach: async (pid) => {
          await chain.attach(target, pid);
          const socket = runtime.attachSocket?.(id, stateDir);
          if (socket) for (const fn of this.earlyAttach.get(id) ?? []) fn(socket);
          this.earlyAttach.delete(id);
        },
      });
      await chain.started(target, proc.pid);
      this.startTimings.set(id, { ...chain.timings, 'total start': performance.now() - startedAt });
      // Exec sessions join with the same capabilities, env and cgroups: keep the plan.
      this.plans.set(id, plan);
      await writeJsonAtomic(path.join(stateDir, 'launch.json'), plan);
      Object.assign(rec.State, { Status: 'running', Running: true, Paused: false, OOMKilled: false, Pid: proc.pid, ExitCode: 0, Error: '', StartedAt: proc.startedAt, FinishedAt: '0001-01-01T00:00:00Z' });
      this.health.arm(rec, true);
      await this.store.save(rec);
      this.watchExit(id);
      this.emit('start', id);
    } catch (err) {
      await chain.cleanup(target);
      if (mounted) await storage.unmount(id).catch(() => undefined);
      rec.State.Error = (err as Error).message;
      rec.State.ExitCode = (err as BerthError).status === 400 ? 127 : 128;
      await this.store.save(rec).catch(() => undefined);
      this.earlyAttach.delete(id);
      // Docker removes an AutoRemove container whose start failed: `run --rm` leaves nothing.
      if (rec.HostConfig.AutoRemove) await this.removeNow(id, { force: true }).catch((e) => this.deps.log.warn('auto-remove failed', { container: id, error: (e as Error).message }));
      throw err;
    }
  }

  private watchExit(id: string): void {
    if (this.watching.has(id)) return;
    this.watching.add(id);
    const stateDir = this.store.stateDir(id);
    this.runtime()
      .wait(id, stateDir)
      .then(
        (exit) => this.serial(id, () => this.handleExit(id, exit)),
        (err) => this.serial(id, () => this.handleExit(id, { exitCode: 255, signal: null, oomKilled: false, finishedAt: new Date().toISOString(), error: (err as Error).message })),
      )
      .catch((err) => this.deps.log.error('exit handling failed', { container: id, error: (err as Error).message }))
      .finally(() => this.watching.delete(id));
  }

  private async handleExit(id: string, exit: ExitStatus): Promise<void> {
    const rec = this.store.find(id);
    if (!rec) return;
    const target: IsolationTarget = { containerId: id, stateDir: this.store.stateDir(id), hostConfig: rec.HostConfig };
    await new IsolatorChain(this.deps.isolators()).cleanup(target, (err) => this.deps.log.warn('isolator cleanup failed', { container: id, error: err.message }));
    await this.deps.storage()?.unmount(id).catch(() => undefined);
    await this.deps.volumes?.release(id).catch(() => undefined);
    this.health.disarm(id, rec);
    Object.assign(rec.State, {
      Status: 'exited',
      Running: false,
      Paused: false,
      Pid: 0,
      ExitCode: exit.exitCode,
      OOMKilled: exit.oomKilled,
      Error: exit.error ?? '',
      FinishedAt: exit.finishedAt,
    });
    await this.store.save(rec);
    this.emit('exit', id, exit);
    if (rec.HostConfig.AutoRemove && !this.restarting.has(id)) await this.removeNow(id, { force: true }).catch((err) => this.deps.log.warn('auto-remove failed', { container: id, error: (err as Error).message }));
    else if (this.shouldRestart(rec, exit.exitCode)) this.scheduleRestart(rec);
  }

  /** Docker's restart policies: no, always, unless-stopped, on-failure[:max]. */
  private shouldRestart(rec: ContainerRecord, exitCode: number, daemonStart = false): boolean {
    const policy = rec.HostConfig.RestartPolicy ?? { Name: 'no' };
    if (rec.ManuallyStopped && !(daemonStart && policy.Name === 'always')) return false;
    switch (policy.Name) {
      case 'always':
      case 'unless-stopped':
        return true;
      case 'on-failure':
        return exitCode !== 0 && (!policy.MaximumRetryCount || rec.RestartCount < policy.MaximumRetryCount);
      default:
        return false;
    }
  }

  /** Restart with Docker's back-off: 100 ms doubling per consecutive restart, at most a minute. */
  private scheduleRestart(rec: ContainerRecord): void {
    const delay = Math.min(60_000, 100 * 2 ** Math.min(rec.RestartCount, 10));
    rec.State.Restarting = true;
    rec.State.Status = 'restarting';
    setTimeout(() => {
      const current = this.store.find(rec.Id);
      if (!current || current.State.Running || current.ManuallyStopped) return;
      current.RestartCount++;
      current.State.Restarting = false;
      this.serial(current.Id, () => this.startNow(current.Id)).catch((err) => {
        this.deps.log.warn('restart failed', { container: current.Id, error: (err as Error).message });
        current.State.Restarting = false;
        current.State.Status = 'exited';
      });
    }, delay).unref();
  }

  // ---- stop / kill / restart / wait --------------------------------------------------------

  async kill(ref: string, signal: string | number = 'SIGKILL'): Promise<void> {
    const rec = this.store.get(ref);
    assertCan('kill', rec, { ref });
    rec.ManuallyStopped = true;
    await this.thaw(rec);
    // dockerd answers a SIGKILL only once the container has stopped (10 s at most), so a
    // `docker kill` followed by `docker inspect` sees the exit; other signals return at once.
    const isKill = ['SIGKILL', 'KILL', '9'].includes(String(signal).toUpperCase());
    const exited = isKill ? this.waitFor(rec.Id, 'not-running') : undefined;
    await this.runtime().kill(rec.Id, this.store.stateDir(rec.Id), signal);
    this.emit('kill', rec.Id);
    if (exited) await Promise.race([exited.catch(() => undefined), new Promise((r) => setTimeout(r, 10_000).unref())]);
  }

  /** SIGTERM (or the image's StopSignal), then SIGKILL after `timeout` seconds. */
  async stop(ref: string, timeout?: number, signal?: string): Promise<boolean> {
    const rec = this.store.get(ref);
    if (!rec.State.Running) return false;
    rec.ManuallyStopped = true;
    await this.thaw(rec);
    const exited = this.waitFor(rec.Id, 'not-running');
    const t = timeout ?? rec.Config.StopTimeout ?? DEFAULT_STOP_TIMEOUT;
    try {
      await this.runtime().kill(rec.Id, this.store.stateDir(rec.Id), signal || rec.Config.StopSignal || 'SIGTERM');
    } catch (err) {
      if (!(err instanceof ConflictError)) throw err;
    }
    const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), Math.max(0, t) * 1000).unref());
    if ((await Promise.race([exited, timer])) === 'timeout') {
      await this.runtime().kill(rec.Id, this.store.stateDir(rec.Id), 'SIGKILL').catch(() => undefined);
      await exited;
    }
    this.emit('stop', rec.Id);
    return true;
  }

  /** Stop and start again; a `--rm` container is not removed in between (as in Docker). */
  async restart(ref: string, timeout?: number): Promise<void> {
    const id = this.store.get(ref).Id;
    this.restarting.add(id);
    try {
      await this.stop(id, timeout);
    } finally {
      this.restarting.delete(id);
    }
    await this.start(id);
  }

  /** Resolves with the exit code per Docker's wait conditions. */
  async waitFor(ref: string, condition: WaitCondition = 'not-running', signal?: AbortSignal): Promise<{ StatusCode: number; Error?: { Message: string } }> {
    const rec = this.store.get(ref);
    const id = rec.Id;
    const result = () => {
      const r = this.store.find(id) ?? rec;
      return { StatusCode: r.State.ExitCode, ...(r.State.Error ? { Error: { Message: r.State.Error } } : {}) };
    };
    if (condition === 'not-running' && !rec.State.Running) return result();
    return new Promise((resolve, reject) => {
      const cleanup = () => {
        this.off('exit', onExit);
        this.off('destroy', onDestroy);
        signal?.removeEventListener('abort', onAbort);
      };
      const onExit = (eid: string, exit: ExitStatus) => {
        if (eid !== id || condition === 'removed') return;
        cleanup();
        resolve({ StatusCode: exit.exitCode, ...(exit.error ? { Error: { Message: exit.error } } : {}) });
      };
      const onDestroy = (eid: string) => {
        if (eid !== id) return;
        cleanup();
        resolve(result());
      };
      const onAbort = () => {
        cleanup();
        reject(new CanceledError('wait cancelled'));
      };
      this.on('exit', onExit);
      this.on('destroy', onDestroy);
      signal?.addEventListener('abort', onAbort);
    });
  }

  // ---- remove / rename ---------------------------------------------------------------------

  remove(ref: string, opts: { force?: boolean; volumes?: boolean } = {}): Promise<void> {
    const rec = this.store.get(ref);
    return this.serial(rec.Id, () => this.removeNow(rec.Id, opts));
  }

  private async removeNow(id: string, opts: { force?: boolean; volumes?: boolean }): Promise<void> {
    const rec = this.store.find(id);
    if (!rec) return;
    assertCan('remove', rec, { force: opts.force });
    if (rec.State.Running) {
      await this.thaw(rec);
      const exited = this.waitFor(id, 'next-exit');
      await this.runtime().kill(id, this.store.stateDir(id), 'SIGKILL').catch(() => undefined);
      // The exit handler runs in this container's queue, after us: finish its work here.
      const status = await Promise.race([exited.then(() => undefined), this.runtime().wait(id, this.store.stateDir(id))]);
      // Whoever waits on this container (an attached `run`) learns how it ended: 137, not 0.
      if (status) Object.assign(rec.State, { Status: 'exited', Running: false, Pid: 0, ExitCode: status.exitCode, OOMKilled: status.oomKilled, FinishedAt: status.finishedAt });
      const target: IsolationTarget = { containerId: id, stateDir: this.store.stateDir(id), hostConfig: rec.HostConfig };
      await new IsolatorChain(this.deps.isolators()).cleanup(target);
    }
    rec.State.Status = 'removing';
    await this.runtime().delete(id, this.store.stateDir(id)).catch(() => undefined);
    await this.storage().remove(id);
    await this.store.delete(id);
    await this.deps.networks?.forget(id).catch((e) => this.deps.log.warn('network cleanup failed', { container: id, error: (e as Error).message }));
    // `rm -v` (and `run --rm`, as Docker does) removes the container's anonymous volumes.
    await this.deps.volumes?.detach(id, !!opts.volumes || !!rec.HostConfig.AutoRemove);
    this.plans.delete(id);
    this.health.disarm(id);
    this.startTimings.delete(id);
    this.execs.dropContainer(id);
    this.emit('destroy', id, { ...(rec.Config.Labels ?? {}), image: rec.Config.Image, name: rec.Name.replace(/^\//, '') });
  }

  async rename(ref: string, newName: string): Promise<void> {
    const rec = this.store.get(ref);
    if (!newName) throw new InvalidArgumentError('Neither old nor new names may be empty');
    rec.Name = this.store.reserveName(newName, rec.Id);
    await this.store.save(rec);
    this.emit('rename', rec.Id);
  }

  // ---- filesystem --------------------------------------------------------------------------

  /**
   * The container's changes, less the mount points berth itself made for it (Docker keeps those
   * in a hidden init layer, so they never show in `docker diff` either).
   */
  async changes(ref: string): Promise<Change[]> {
    const changes = await this.storage().changes(this.store.get(ref).Id);
    const own = changes.filter((c) => !(c.kind === 'A' && INIT_PATHS.some((p) => c.path === p || c.path.startsWith(p + '/'))));
    // A directory changed only by berth's mount points in it (/etc for hosts, resolv.conf) is not the user's change.
    const below = (dir: string) => own.some((c) => c.path.startsWith(`${dir}/`));
    return own.filter((c) => !(INIT_PATHS.some((p) => path.posix.dirname(p) === c.path) && !below(c.path)));
  }

  /** The container's whole filesystem as a tar stream; the rootfs stays mounted until it ends. */
  async export(ref: string): Promise<Readable> {
    const rec = this.store.get(ref);
    const storage = this.storage();
    const rootfs = await storage.mount(rec.Id);
    try {
      const { items } = await diffTrees(null, rootfs);
      const stream = writeLayerTar(rootfs, items);
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        storage.unmount(rec.Id).catch(() => undefined);
      };
      stream.once('end', release);
      stream.once('close', release);
      stream.once('error', release);
      return stream;
    } catch (err) {
      await storage.unmount(rec.Id).catch(() => undefined);
      throw err;
    }
  }

  // ---- logs and attach ---------------------------------------------------------------------

  private daemonLogConfig(): LogConfig {
    return this.deps.logConfig ?? { Type: DEFAULT_LOG_DRIVER, Config: {} };
  }

  /** The container's log config; records made before LogConfig was kept get the daemon's. */
  logConfigOf(rec: ContainerRecord): LogConfig {
    return rec.HostConfig.LogConfig ?? resolveLogConfig(undefined, this.daemonLogConfig());
  }

  logPath(ref: string): string {
    const rec = this.store.get(ref);
    return this.runtime().logPath(rec.Id, this.store.stateDir(rec.Id));
  }

  /** Connect to the running container's attach socket (monitor protocol, core/launcher/attach.ts). */
  connectAttach(ref: string): net.Socket | undefined {
    const rec = this.store.get(ref);
    if (!rec.State.Running) return undefined;
    const socket = this.runtime().attachSocket?.(rec.Id, this.store.stateDir(rec.Id));
    return socket ? connectUnix(socket) : undefined;
  }

  // ---- resources: pause, stats, top, update -----------------------------------------------

  private target(rec: ContainerRecord): IsolationTarget {
    return { containerId: rec.Id, stateDir: this.store.stateDir(rec.Id), hostConfig: rec.HostConfig };
  }

  /** The first isolator that offers `method`, or a clear error naming what is missing. */
  private isolatorWith<K extends keyof Isolator>(method: K, what: string): { uri: string; impl: Isolator } {
    const iso = this.deps.isolators().find((i) => typeof i.impl[method] === 'function');
    if (!iso) throw new NotImplementedError(`${what} needs an isolator that supports it (isolator.cgroups); configured: ${this.deps.isolators().map((i) => i.uri).join(', ') || 'none'}`);
    return iso;
  }

  async pause(ref: string): Promise<void> {
    const rec = this.store.get(ref);
    assertCan('pause', rec);
    const iso = this.isolatorWith('pause', 'pause');
    await isolatorCall(iso, 'pause', () => iso.impl.pause!(this.target(rec)));
    Object.assign(rec.State, { Paused: true, Status: 'paused' });
    await this.store.save(rec);
    this.emit('pause', rec.Id);
  }

  async unpause(ref: string): Promise<void> {
    const rec = this.store.get(ref);
    assertCan('unpause', rec);
    await this.thaw(rec);
    this.emit('unpause', rec.Id);
  }

  /** A frozen process ignores even SIGKILL on cgroup v1: thaw before signalling. */
  private async thaw(rec: ContainerRecord): Promise<void> {
    if (!rec.State.Paused) return;
    const iso = this.isolatorWith('resume', 'unpause');
    await isolatorCall(iso, 'resume', () => iso.impl.resume!(this.target(rec)));
    Object.assign(rec.State, { Paused: false, Status: rec.State.Running ? 'running' : rec.State.Status });
    await this.store.save(rec);
  }

  /** Host pids of the container's processes. */
  async pids(ref: string): Promise<number[]> {
    const rec = this.store.get(ref);
    assertCan('top', rec);
    const iso = this.deps.isolators().find((i) => i.impl.pids);
    return iso ? await iso.impl.pids!(this.target(rec)) : [rec.State.Pid];
  }

  /** Raw resource figures from every isolator that reports them, merged. */
  async rawStats(ref: string): Promise<Record<string, unknown>> {
    const rec = this.store.get(ref);
    const out: Record<string, unknown> = {};
    if (!rec.State.Running) return out;
    for (const iso of this.deps.isolators()) if (iso.impl.stats) Object.assign(out, await iso.impl.stats(this.target(rec)));
    return out;
  }

  /** POST /containers/{id}/update: new limits for a running (or stopped) container. */
  async update(ref: string, resources: Record<string, unknown>): Promise<string[]> {
    const rec = this.store.get(ref);
    const { RestartPolicy, ...limits } = resources as { RestartPolicy?: HostConfigSpec['RestartPolicy'] } & Record<string, unknown>;
    if (rec.State.Running && Object.keys(limits).length) {
      const iso = this.isolatorWith('update', 'update');
      await isolatorCall(iso, 'update', () => iso.impl.update!(this.target(rec), limits));
    }
    Object.assign(rec.HostConfig, limits, RestartPolicy ? { RestartPolicy } : {});
    await this.store.save(rec);
    return [];
  }

  // ---- exec --------------------------------------------------------------------------------

  execCreate(ref: string, config: ExecConfig): string {
    const rec = this.store.get(ref);
    const id = this.execs.create(rec, config);
    this.emit('exec_create', rec.Id);
    return id;
  }

  async execStart(execId: string, beforeExec?: (socketPath: string) => void): Promise<{ exited: Promise<ExitStatus> }> {
    const session = this.execs.get(execId);
    const rec = this.store.get(session.ContainerID);
    const plan = this.plans.get(rec.Id) ?? (await readJson<LaunchPlan>(path.join(this.store.stateDir(rec.Id), 'launch.json')));
    assertCan('exec', rec);
    if (!plan) throw new StateError(`Container ${rec.Id} is not running`);
    // The launcher joins namespaces; the isolators put the exec'd process into the container's cgroups.
    const chain = new IsolatorChain(this.deps.isolators());
    const attach = (pid: number) => chain.attach({ ...this.target(rec), joining: true }, pid);
    const started = await this.execs.start(session, rec, plan, { runtime: this.runtime(), storage: this.storage(), attach }, beforeExec);
    this.emit('exec_start', rec.Id);
    return started;
  }

  // ---- restart of berthd -------------------------------------------------------------------

  /** Re-adopt containers after a berthd restart: running ones are watched again, exits learnt. */
  async recover(): Promise<void> {
    const runtime = this.deps.runtime();
    const live: string[] = [];
    for (const rec of this.store.list()) {
      if (!rec.State.Running || !runtime) continue;
      const state = await runtime.state(rec.Id, this.store.stateDir(rec.Id));
      if (state.status === 'running') {
        live.push(rec.Id);
        this.watchExit(rec.Id);
        this.health.arm(rec, false);
      } else {
        const exit = state.exit ?? { exitCode: 255, signal: null, oomKilled: false, finishedAt: new Date().toISOString(), error: 'the container ended while berthd was down and left no exit status' };
        await this.serial(rec.Id, () => this.handleExit(rec.Id, exit));
      }
    }
    await this.deps.storage()?.recover?.(live);
    // Running containers keep their rootfs mounted; count the mount so stop releases it.
    for (const id of live) await this.deps.storage()?.mount(id).catch(() => undefined);
    // Containers whose policy says so come back with the daemon.
    for (const rec of this.store.list()) {
      if (!rec.State.Running && this.shouldRestart(rec, rec.State.ExitCode, true) && rec.State.StartedAt !== initialState().StartedAt) {
        this.serial(rec.Id, () => this.startNow(rec.Id)).catch((err) => this.deps.log.warn('restart at daemon start failed', { container: rec.Id, error: (err as Error).message }));
      }
    }
  }

  summary(rec: ContainerRecord) {
    return {
      Id: rec.Id,
      Names: namesOf(rec, this.store.list()),
      Image: this.imageAsGiven(rec),
      ImageID: rec.Image,
      Command: [rec.Path, ...rec.Args].join(' '),
      Created: Math.floor(Date.parse(rec.Created) / 1000),
      Ports: this.deps.networks?.summaryPorts(rec.Id) ?? [],
      Labels: rec.Config.Labels ?? {},
      State: rec.State.Status,
      Status: statusText(rec),
      HostConfig: { NetworkMode: rec.HostConfig.NetworkMode ?? 'default' },
      NetworkSettings: { Networks: this.deps.networks?.settings(rec.Id).Networks ?? {} },
      Mounts: this.deps.volumes?.inspectMounts(rec.Id) ?? [],
    };
  }

  /** dockerd's rule: the image as the user named it, or its ID once that name means another image. */
  private imageAsGiven(rec: ContainerRecord): string {
    return this.deps.images.store.find(rec.Config.Image)?.id === rec.Image ? rec.Config.Image : rec.Image;
  }

  inspect(ref: string) {
    const rec = this.store.get(ref);
    return {
      Id: rec.Id,
      Created: rec.Created,
      Path: rec.Path,
      Args: rec.Args,
      State: rec.State,
      Image: rec.Image,
      ResolvConfPath: `${this.store.stateDir(rec.Id)}/resolv.conf`,
      HostnamePath: `${this.store.stateDir(rec.Id)}/hostname`,
      HostsPath: `${this.store.stateDir(rec.Id)}/hosts`,
      LogPath: this.deps.runtime()?.logPath(rec.Id, this.store.stateDir(rec.Id)) ?? '',
      Name: rec.Name,
      RestartCount: rec.RestartCount,
      Driver: rec.Driver,
      Platform: 'linux',
      MountLabel: '',
      ProcessLabel: '',
      AppArmorProfile: '',
      HostConfig: { ...rec.HostConfig, LogConfig: this.logConfigOf(rec) },
      GraphDriver: { Name: rec.Driver, Data: null },
      Mounts: (rec.HostConfig.Binds ?? []).filter((b) => /^\/[^:]*:\//.test(b)).map((b) => {
        const { source, target, readOnly, propagation } = parseBind(b);
        return { Type: 'bind', Source: source, Destination: target, Mode: b.split(':')[2] ?? '', RW: !readOnly, Propagation: propagation };
      }).concat(this.deps.volumes?.inspectMounts(rec.Id) ?? []),
      Config: rec.Config,
      NetworkSettings: this.deps.networks?.settings(rec.Id) ?? { Networks: {}, Ports: {}, IPAddress: '', Gateway: '', MacAddress: '' },
    };
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

function statusText(rec: ContainerRecord): string {
  const since = (t: string) => humanDuration(Date.now() - Date.parse(t));
  switch (rec.State.Status) {
    case 'running':
    case 'paused':
      return `Up ${since(rec.State.StartedAt)}${rec.State.Paused ? ' (Paused)' : healthSuffix(rec.State.Health)}`;
    case 'exited':
      return `Exited (${rec.State.ExitCode}) ${since(rec.State.FinishedAt)} ago`;
    case 'created':
      return 'Created';
    default:
      return rec.State.Status;
  }
}
