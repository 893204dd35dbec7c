/**
 * Healthchecks as dockerd runs them (moby daemon/health.go): the probe (Config.Healthcheck.Test)
 * runs as an exec session on a timer while the container runs; State.Health keeps the status
 * (starting, healthy, unhealthy), the failing streak and the last five results. Failures inside
 * the start period do not count while the container is still starting. A status change emits
 * `health_status: STATUS`. A berthd restart re-arms the probes of the containers it adopts.
 */
import type { Socket } from 'node:net';
import { InvalidArgumentError } from '../contracts/errors';
import type { Logger } from '../contracts/types';
import { FrameDecoder, MonitorFrame, signalFrame } from '../launcher/attach';
import { connectUnix } from '../util/unix-socket';
import type { ExitStatus } from '../contracts/runtime';
import type { ExecConfig } from './exec-sessions';
import type { ContainerRecord } from './record';

/** Docker's HealthConfig; durations in nanoseconds, 0 meaning the default. */
export interface HealthConfig {
  Test?: string[] | null;
  Interval?: number;
  Timeout?: number;
  StartPeriod?: number;
  StartInterval?: number;
  Retries?: number;
}

export interface HealthLogEntry {
  Start: string;
  End: string;
  ExitCode: number;
  Output: string;
}

export interface HealthState {
  Status: 'starting' | 'healthy' | 'unhealthy';
  FailingStreak: number;
  Log: HealthLogEntry[];
}

const NS_PER_MS = 1_000_000;
const DEFAULT_INTERVAL_MS = 30_000;
const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_START_INTERVAL_MS = 5_000;
const DEFAULT_RETRIES = 3;
const MAX_LOG_ENTRIES = 5;
const MAX_OUTPUT_BYTES = 4096;

/**
 * The container's healthcheck: the request's, its unset parts from the image's (Docker's merge).
 * Bad values are refused here, at create, with dockerd's messages.
 */
export function mergeHealthcheck(image: HealthConfig | undefined | null, req: HealthConfig | undefined | null): HealthConfig | undefined {
  if (!image && !req) return undefined;
  const merged: HealthConfig = { ...(image ?? {}), ...(req ?? {}) };
  if (!req?.Test?.length) merged.Test = image?.Test ?? req?.Test;
  for (const key of ['Interval', 'Timeout', 'StartPeriod', 'StartInterval', 'Retries'] as const) if (!req?.[key] && image?.[key]) merged[key] = image[key];
  for (const key of ['Interval', 'Timeout', 'StartPeriod', 'StartInterval'] as const) {
    const v = merged[key] ?? 0;
    if (v < 0 || (v > 0 && v < NS_PER_MS)) throw new InvalidArgumentError(`Config.Healthcheck.${key}: ${key} in Healthcheck cannot be less than 1ms`);
  }
  if ((merged.Retries ?? 0) < 0) throw new InvalidArgumentError('Config.Healthcheck.Retries: Retries in Healthcheck cannot be negative');
  const kind = merged.Test?.[0];
  if (merged.Test?.length && !['NONE', 'CMD', 'CMD-SHELL'].includes(kind!)) {
    throw new InvalidArgumentError(`Config.Healthcheck.Test: unknown type ${JSON.stringify(kind)}: expected ["NONE"], ["CMD", args...] or ["CMD-SHELL", command]`);
  }
  return merged;
}

/** The probe's argv, or undefined when the container has no healthcheck (none, or NONE). */
function probeCommand(hc: HealthConfig | undefined): string[] | undefined {
  const [kind, ...rest] = hc?.Test ?? [];
  if (kind === 'CMD' && rest.length) return rest;
  if (kind === 'CMD-SHELL' && rest.length) return ['/bin/sh', '-c', rest.join(' ')];
  return undefined;
}

/** What `ps` appends to "Up 3 seconds". */
export function healthSuffix(health: HealthState | undefined): string {
  if (!health) return '';
  return health.Status === 'starting' ? ' (health: starting)' : ` (${health.Status})`;
}

/** Go's time.Duration text for whole milliseconds (1s, 1.5s, 500ms, 1m30s), as dockerd prints it. */
function goDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  const m = Math.floor(ms / 60_000);
  const s = (ms % 60_000) / 1000;
  return `${m ? `${m}m` : ''}${s || !m ? `${s}s` : ''}`;
}

const msOf = (ns: number | undefined, fallback: number) => (ns ? Math.max(1, Math.round(ns / NS_PER_MS)) : fallback);

export interface HealthDeps {
  find(id: string): ContainerRecord | undefined;
  /** Change the record, visible only once saved (ContainerStore.update). */
  update(rec: ContainerRecord, change: (draft: ContainerRecord) => void): Promise<void>;
  execCreate(id: string, config: ExecConfig): string;
  execStart(execId: string, beforeExec: (socketPath: string) => void): Promise<{ exited: Promise<ExitStatus> }>;
  execForget(execId: string): void;
  /** A status change, published as the event `health_status: STATUS`. */
  emit(id: string, status: HealthState['Status']): void;
  log: Logger;
}

export class HealthMonitor {
  /** Per running container with a healthcheck: the pending timer; a new arm() replaces it. */
  private readonly timers = new Map<string, NodeJS.Timeout>();

  constructor(private readonly deps: HealthDeps) {}

  /**
   * Start probing a container that just started (`fresh`: status back to starting) or that a
   * restarted berthd adopted (its state carries on).
   */
  arm(rec: ContainerRecord, fresh: boolean): void {
    this.disarm(rec.Id);
    const hc = rec.Config.Healthcheck as HealthConfig | undefined;
    if (!probeCommand(hc)) {
      delete rec.State.Health;
      return;
    }
    if (fresh || !rec.State.Health) rec.State.Health = { Status: 'starting', FailingStreak: 0, Log: rec.State.Health?.Log ?? [] };
    this.schedule(rec.Id);
  }

  /** The container stopped: no more probes, and it is no longer healthy (as dockerd reports it). */
  disarm(id: string, rec?: ContainerRecord): void {
    const timer = this.timers.get(id);
    if (timer) clearTimeout(timer);
    this.timers.delete(id);
    if (rec?.State.Health) rec.State.Health.Status = 'unhealthy';
  }

  private schedule(id: string): void {
    const rec = this.deps.find(id);
    if (!rec?.State.Running || !rec.State.Health) return;
    const hc = rec.Config.Healthcheck as HealthConfig;
    const inStartPeriod = rec.State.Health.Status === 'starting' && Date.now() - Date.parse(rec.State.StartedAt) < msOf(hc.StartPeriod, 0);
    const delay = inStartPeriod && hc.StartInterval ? msOf(hc.StartInterval, DEFAULT_START_INTERVAL_MS) : msOf(hc.Interval, DEFAULT_INTERVAL_MS);
    const timer = setTimeout(() => {
      this.probeOnce(id)
        .catch((err) => this.deps.log.warn('health probe failed', { container: id, error: (err as Error).message }))
        .finally(() => {
          if (this.timers.get(id) === timer) this.schedule(id);
        });
    }, delay);
    timer.unref();
    this.timers.set(id, timer);
  }

  private async probeOnce(id: string): Promise<void> {
    const rec = this.deps.find(id);
    if (!rec?.State.Running || !rec.State.Health) return;
    if (rec.State.Paused) return; // a frozen container cannot answer; dockerd skips it too
    const hc = rec.Config.Healthcheck as HealthConfig;
    const start = new Date();
    const { exitCode, output } = await this.run(id, probeCommand(hc)!, msOf(hc.Timeout, DEFAULT_TIMEOUT_MS));
    const current = this.deps.find(id);
    // Stopped (or restarted) while the probe ran: that result no longer describes it.
    if (!current?.State.Running || current.State.Health !== rec.State.Health || current.State.StartedAt !== rec.State.StartedAt) return;
    const before = rec.State.Health;
    const health: HealthState = { ...before, Log: [...before.Log, { Start: start.toISOString(), End: new Date().toISOString(), ExitCode: exitCode, Output: output }].slice(-MAX_LOG_ENTRIES) };
    if (exitCode === 0) {
      health.FailingStreak = 0;
      health.Status = 'healthy';
    } else {
      const inStartPeriod = health.Status === 'starting' && start.getTime() - Date.parse(rec.State.StartedAt) < msOf(hc.StartPeriod, 0);
      if (!inStartPeriod) {
        health.FailingStreak++;
        if (health.FailingStreak >= (hc.Retries || DEFAULT_RETRIES)) health.Status = 'unhealthy';
      }
    }
    // Inspect shows the result only once it is saved: a berthd killed right after reports it still.
    await this.deps.update(rec, (draft) => {
      draft.State.Health = health;
    });
    if (health.Status !== before.Status) this.deps.emit(id, health.Status);
  }

  /** One probe as an exec session: its exit code and (capped) output; -1 when it timed out or could not start. */
  private async run(id: string, argv: string[], timeoutMs: number): Promise<{ exitCode: number; output: string }> {
    const execId = this.deps.execCreate(id, { Cmd: argv, AttachStdout: true, AttachStderr: true });
    const chunks: Buffer[] = [];
    let size = 0;
    let monitor: Socket | undefined;
    let outputEnded!: () => void;
    const outputDone = new Promise<void>((resolve) => (outputEnded = resolve));
    // Connected while the process waits to exec, so not one byte of its output is missed.
    const collect = (socketPath: string) => {
      monitor = connectUnix(socketPath);
      monitor.on('error', outputEnded);
      monitor.on('close', outputEnded);
      const decoder = new FrameDecoder(({ type, payload }) => {
        if (type === MonitorFrame.exit || size >= MAX_OUTPUT_BYTES) return;
        const part = payload.subarray(0, MAX_OUTPUT_BYTES - size);
        chunks.push(part);
        size += part.length;
      });
      monitor.on('data', (c: Buffer) => decoder.push(c));
    };
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
    const finished = this.deps.execStart(execId, collect).then(async ({ exited }) => (await Promise.all([exited, outputDone]))[0]);
    finished.catch(() => undefined); // after a timeout nobody awaits it
    try {
      const result = await Promise.race([finished, timedOut]);
      if (result === 'timeout') {
        monitor?.write(signalFrame(9));
        return { exitCode: -1, output: `Health check exceeded timeout (${goDuration(timeoutMs)})` };
      }
      return { exitCode: result.exitCode, output: Buffer.concat(chunks).toString('utf8') };
    } catch (err) {
      return { exitCode: -1, output: (err as Error).message };
    } finally {
      clearTimeout(timer);
      monitor?.end();
      this.deps.execForget(execId);
    }
  }
}
