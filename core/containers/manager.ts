/**
 * Containers, as the rest of core sees them: one facade over the operations, each in its own
 * file the way moby's daemon/ and libpod are laid out — create.ts, start.ts, stop.ts (kill, stop,
 * restart), wait.ts, remove.ts, pause.ts, resources.ts (top, stats, update), exec.ts,
 * filesystem.ts (diff, export), names.ts (rename, links), monitor.ts (exits, restart policy,
 * adoption after a berthd restart) and views.ts (Docker's JSON shapes). They share one
 * ContainerContext (context.ts); state.ts is the state machine they all go through.
 */
import { EventEmitter } from 'node:events';
import type * as net from 'node:net';
import type { Readable } from 'node:stream';
import type { ExitStatus } from '../contracts/runtime';
import type { Change } from '../contracts/storage';
import { connectUnix } from '../util/unix-socket';
import { ContainerContext, type ManagerDeps } from './context';
import { type CreateRequest, createContainer } from './create';
import { execCreate, execStart } from './exec';
import type { ExecConfig, ExecSessions } from './exec-sessions';
import { changesOf, exportContainer } from './filesystem';
import { HealthMonitor } from './health';
import type { LogConfig } from './log-config';
import { monitorExits, recover } from './monitor';
import { removeLink, renameContainer } from './names';
import { pauseContainer, unpauseContainer } from './pause';
import type { ContainerRecord } from './record';
import { type RemoveOptions, removeContainer } from './remove';
import { pidsOf, rawStatsOf, updateResources } from './resources';
import { startContainer } from './start';
import { killContainer, restartContainer, stopContainer } from './stop';
import { namesOfAll } from './links';
import { containerSummary, inspectContainer } from './views';
import { type WaitCondition, type WaitResult, waitFor } from './wait';

export type { CreateRequest, ManagerDeps, WaitCondition };

/**
 * Events: 'create', 'start', 'exit' (id, status), 'destroy' (id, attributes), 'kill', 'stop',
 * 'rename', 'pause', 'unpause', 'exec_create', 'exec_start', 'health_status' — also fed to /events.
 */
export class ContainerManager extends EventEmitter {
  private readonly ctx: ContainerContext;
  readonly execs: ExecSessions;

  constructor(deps: ManagerDeps) {
    super();
    this.setMaxListeners(0);
    this.ctx = new ContainerContext(
      deps,
      this,
      (ctx) =>
        new HealthMonitor({
          find: (id) => ctx.store.find(id),
          update: (rec, change) => ctx.store.update(rec, change),
          execCreate: (id, config) => execCreate(ctx, id, config),
          execStart: (execId, beforeExec) => execStart(ctx, execId, beforeExec),
          execForget: (execId) => ctx.execs.forget(execId),
          emit: (id, status) => this.emit('health_status', id, status),
          log: deps.log,
        }),
    );
    this.execs = this.ctx.execs;
    monitorExits(this.ctx);
  }

  open(): Promise<void> {
    return this.ctx.store.open();
  }

  get(ref: string): ContainerRecord {
    return this.ctx.store.get(ref);
  }

  list(): ContainerRecord[] {
    return this.ctx.store.list();
  }

  /** Image IDs in use by containers (an image in use cannot be deleted). */
  usersOf(imageId: string): string[] {
    return this.list()
      .filter((c) => c.Image === imageId)
      .map((c) => c.Id);
  }

  create(req: CreateRequest, name?: string): Promise<{ Id: string; Warnings: string[] }> {
    return createContainer(this.ctx, req, name);
  }

  start(ref: string): Promise<void> {
    return startContainer(this.ctx, ref);
  }

  /** Per-phase milliseconds of the container's last start. */
  timings(ref: string): Record<string, number> {
    return { ...(this.ctx.startTimings.get(this.get(ref).Id) ?? {}) };
  }

  /** `fn` gets the attach socket of the container's next start while its process waits to exec. */
  onBeforeExec(id: string, fn: (socketPath: string) => void): () => void {
    const early = this.ctx.earlyAttach;
    early.set(id, [...(early.get(id) ?? []), fn]);
    return () =>
      early.set(
        id,
        (early.get(id) ?? []).filter((f) => f !== fn),
      );
  }

  kill(ref: string, signal: string | number = 'SIGKILL'): Promise<void> {
    return killContainer(this.ctx, ref, signal);
  }

  stop(ref: string, timeout?: number, signal?: string): Promise<boolean> {
    return stopContainer(this.ctx, ref, timeout, signal);
  }

  restart(ref: string, timeout?: number): Promise<void> {
    return restartContainer(this.ctx, ref, timeout);
  }

  waitFor(ref: string, condition: WaitCondition = 'not-running', signal?: AbortSignal): Promise<WaitResult> {
    return waitFor(this.ctx, ref, condition, signal);
  }

  remove(ref: string, opts: RemoveOptions = {}): Promise<void> {
    return removeContainer(this.ctx, ref, opts);
  }

  rename(ref: string, newName: string): Promise<void> {
    return renameContainer(this.ctx, ref, newName);
  }

  removeLink(linkName: string): Promise<void> {
    return removeLink(this.ctx, linkName);
  }

  changes(ref: string): Promise<Change[]> {
    return changesOf(this.ctx, ref);
  }

  export(ref: string): Promise<Readable> {
    return exportContainer(this.ctx, ref);
  }

  logConfigOf(rec: ContainerRecord): LogConfig {
    return this.ctx.logConfigOf(rec);
  }

  logPath(ref: string): string {
    const rec = this.get(ref);
    return this.ctx.runtime().logPath(rec.Id, this.ctx.store.stateDir(rec.Id));
  }

  /** Connect to the running container's attach socket (monitor protocol, core/launcher/attach.ts). */
  connectAttach(ref: string): net.Socket | undefined {
    const rec = this.get(ref);
    if (!rec.State.Running) return undefined;
    const socket = this.ctx.runtime().attachSocket?.(rec.Id, this.ctx.store.stateDir(rec.Id));
    return socket ? connectUnix(socket) : undefined;
  }

  pause(ref: string): Promise<void> {
    return pauseContainer(this.ctx, ref);
  }

  unpause(ref: string): Promise<void> {
    return unpauseContainer(this.ctx, ref);
  }

  pids(ref: string): Promise<number[]> {
    return pidsOf(this.ctx, ref);
  }

  rawStats(ref: string): Promise<Record<string, unknown>> {
    return rawStatsOf(this.ctx, ref);
  }

  update(ref: string, resources: Record<string, unknown>): Promise<string[]> {
    return updateResources(this.ctx, ref, resources);
  }

  execCreate(ref: string, config: ExecConfig): string {
    return execCreate(this.ctx, ref, config);
  }

  execStart(execId: string, beforeExec?: (socketPath: string) => void): Promise<{ exited: Promise<ExitStatus> }> {
    return execStart(this.ctx, execId, beforeExec);
  }

  recover(): Promise<void> {
    return recover(this.ctx);
  }

  summary(rec: ContainerRecord) {
    return containerSummary(this.ctx, rec);
  }

  /** Rows of GET /containers/json for `recs`, in their order. */
  summaries(recs: ContainerRecord[]) {
    const names = namesOfAll(this.ctx.store.list());
    return recs.map((rec) => containerSummary(this.ctx, rec, names));
  }

  inspect(ref: string) {
    return inspectContainer(this.ctx, ref);
  }
}
