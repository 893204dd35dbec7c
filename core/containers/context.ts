/**
 * What the container operations (create.ts, start.ts, stop.ts, remove.ts, monitor.ts ...) share:
 * the plugins they act through, the record store, per-container bookkeeping of the running
 * engine, and the per-container queue that serialises lifecycle operations. ContainerManager
 * (manager.ts) makes one and hands it to every operation.
 */
import type { EventEmitter } from 'node:events';
import * as path from 'node:path';
import type { Logger } from '../contracts/types';
import { BerthError, NotImplementedError } from '../contracts/errors';
import type { Isolator, IsolationTarget } from '../contracts/isolator';
import type { LaunchPlan } from '../contracts/launch';
import type { Runtime } from '../contracts/runtime';
import type { StorageDriver } from '../contracts/storage';
import type { LayerUnpacker } from '../images/pull';
import type { ImageService } from '../images/service';
import type { NetworkManager } from '../networks/manager';
import type { VolumeManager } from '../volumes/manager';
import { ExecSessions } from './exec-sessions';
import type { HealthMonitor } from './health';
import type { NamedIsolator } from './isolator-chain';
import { DEFAULT_LOG_DRIVER, type LogConfig, resolveLogConfig } from './log-config';
import type { ContainerRecord, ContainerStore } from './record';

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

export class ContainerContext {
  readonly store: ContainerStore;
  readonly execs: ExecSessions;
  readonly health: HealthMonitor;
  /** Launch plans of running containers (exec derives its plan from them). */
  readonly plans = new Map<string, LaunchPlan>();
  /** Containers whose exit is being watched (monitor.ts), so each exit is handled once. */
  readonly watching = new Set<string>();
  /** Containers being restarted: their exit must not trigger AutoRemove. */
  readonly restarting = new Set<string>();
  /** Per-phase milliseconds of each container's last start, keyed `<isolator uri> <phase>`. */
  readonly startTimings = new Map<string, Record<string, number>>();
  /** Callers that want the process's output from its first byte connect here before it execs. */
  readonly earlyAttach = new Map<string, ((socketPath: string) => void)[]>();
  /** The tail of each container's queue of lifecycle operations. */
  private readonly busy = new Map<string, Promise<unknown>>();

  /**
   * `events` is the manager: 'create', 'start', 'exit', 'destroy' ... go out through it.
   * `makeHealth` builds the healthcheck monitor, which runs its probes through this context.
   */
  constructor(
    readonly deps: ManagerDeps,
    readonly events: EventEmitter,
    makeHealth: (ctx: ContainerContext) => HealthMonitor,
  ) {
    this.store = deps.store;
    this.execs = new ExecSessions(deps.root);
    this.health = makeHealth(this);
  }

  storage(): StorageDriver {
    const s = this.deps.storage();
    if (!s) throw new BerthError(`no storage driver: ${this.deps.missing('storage')}`);
    return s;
  }

  runtime(): Runtime {
    const r = this.deps.runtime();
    if (!r) throw new BerthError(`no runtime: ${this.deps.missing('runtime')}`);
    return r;
  }

  /** Run `fn` after every lifecycle operation queued for container `id` before it. */
  serial<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.busy.get(id) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    this.busy.set(
      id,
      next.catch(() => undefined),
    );
    return next;
  }

  /** Where a started container's launch plan is kept (exec sessions derive theirs from it). */
  launchPlanPath(id: string): string {
    return path.join(this.store.stateDir(id), 'launch.json');
  }

  /** What the isolators are told the container is. */
  target(rec: ContainerRecord): IsolationTarget {
    return { containerId: rec.Id, stateDir: this.store.stateDir(rec.Id), hostConfig: rec.HostConfig };
  }

  /** The first isolator that offers `method`, or a clear error naming what is missing. */
  isolatorWith<K extends keyof Isolator>(method: K, what: string): { uri: string; impl: Isolator } {
    const iso = this.deps.isolators().find((i) => typeof i.impl[method] === 'function');
    if (!iso)
      throw new NotImplementedError(
        `${what} needs an isolator that supports it (isolator.cgroups); configured: ${
          this.deps
            .isolators()
            .map((i) => i.uri)
            .join(', ') || 'none'
        }`,
      );
    return iso;
  }

  daemonLogConfig(): LogConfig {
    return this.deps.logConfig ?? { Type: DEFAULT_LOG_DRIVER, Config: {} };
  }

  /** The container's log config; records made before LogConfig was kept get the daemon's. */
  logConfigOf(rec: ContainerRecord): LogConfig {
    return rec.HostConfig.LogConfig ?? resolveLogConfig(undefined, this.daemonLogConfig());
  }

  /** A side part of an operation failed for container `id`: say so, and carry on. */
  warn(message: string, id: string, err: unknown): void {
    this.deps.log.warn(message, { container: id, error: (err as Error).message });
  }
}
