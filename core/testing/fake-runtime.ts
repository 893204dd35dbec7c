/**
 * A Runtime that runs nothing: `start` hands out a made-up pid (after the attach hook, as a real
 * runtime does), and the process "runs" until the test ends it with `exit()` or a signal ends it.
 * Enough for the container manager's lifecycle, restart policies and state transitions, without
 * root, namespaces or a launcher.
 */
import { constants } from 'node:os';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { ConflictError } from '../contracts/errors';
import type { LaunchPlan } from '../contracts/launch';
import type { ExitStatus, Runtime, RuntimeProcess, RuntimeState, StartHooks } from '../contracts/runtime';

interface FakeProcess {
  containerId: string;
  pid: number;
  startedAt: string;
  exit?: ExitStatus;
  waiters: ((exit: ExitStatus) => void)[];
}

export class FakeRuntime implements Runtime {
  readonly name = 'fake';
  /** Every start, in order: the container and the plan it was given. */
  readonly starts: { containerId: string; plan: LaunchPlan }[] = [];
  /** Every signal sent, in order. */
  readonly signals: { containerId: string; signal: string }[] = [];
  /** Containers whose process ignores SIGTERM (as a shell at pid 1 does): only SIGKILL ends them. */
  readonly ignoresTerm = new Set<string>();
  /** The next start of this container fails with this message (the launcher's reason). */
  readonly failNextStart = new Map<string, string>();
  private readonly processes = new Map<string, FakeProcess>(); // by state dir
  private nextPid = 4_000_000; // above any pid_max: never a real process

  async start(containerId: string, stateDir: string, plan: LaunchPlan, hooks?: StartHooks): Promise<RuntimeProcess> {
    const failure = this.failNextStart.get(containerId);
    if (failure) {
      this.failNextStart.delete(containerId);
      throw new Error(failure);
    }
    const pid = this.nextPid++;
    await hooks?.attach?.(pid);
    await fs.mkdir(stateDir, { recursive: true });
    await fs.appendFile(this.logPath(containerId, stateDir), '');
    const proc: FakeProcess = { containerId, pid, startedAt: new Date().toISOString(), waiters: [] };
    this.processes.set(stateDir, proc);
    this.starts.push({ containerId, plan });
    return { pid, startedAt: proc.startedAt };
  }

  /** End the running process of `stateDir` with `exitCode` (or by `signal`: 128 + its number). */
  exit(stateDir: string, exitCode: number, signal: string | null = null): void {
    const proc = this.processes.get(stateDir);
    if (!proc || proc.exit) throw new Error(`fake runtime: nothing runs in ${stateDir}`);
    proc.exit = { exitCode, signal, oomKilled: false, finishedAt: new Date().toISOString() };
    for (const wake of proc.waiters.splice(0)) wake(proc.exit);
  }

  /** Whether a process runs in `stateDir` now. */
  running(stateDir: string): boolean {
    const proc = this.processes.get(stateDir);
    return !!proc && !proc.exit;
  }

  async kill(containerId: string, stateDir: string, signal: string | number): Promise<void> {
    const proc = this.processes.get(stateDir);
    if (!proc || proc.exit) throw new ConflictError(`container ${containerId} is not running`);
    const name = signalName(signal);
    this.signals.push({ containerId, signal: name });
    if (name === 'SIGTERM' && this.ignoresTerm.has(containerId)) return;
    if (['SIGCONT', 'SIGWINCH', 'SIGCHLD', 'SIGURG'].includes(name)) return; // ignored by default
    this.exit(stateDir, 128 + constants.signals[name as keyof typeof constants.signals], name);
  }

  wait(_containerId: string, stateDir: string, opts?: { signal?: AbortSignal }): Promise<ExitStatus> {
    const proc = this.processes.get(stateDir);
    if (!proc) return Promise.resolve({ exitCode: 128, signal: null, oomKilled: false, finishedAt: new Date().toISOString(), error: 'never started' });
    if (proc.exit) return Promise.resolve(proc.exit);
    return new Promise((resolve, reject) => {
      proc.waiters.push(resolve);
      opts?.signal?.addEventListener('abort', () => reject(opts.signal!.reason ?? new Error('aborted')));
    });
  }

  async state(_containerId: string, stateDir: string): Promise<RuntimeState> {
    const proc = this.processes.get(stateDir);
    if (!proc) return { status: 'absent' };
    if (proc.exit) return { status: 'exited', pid: proc.pid, startedAt: proc.startedAt, exit: proc.exit };
    return { status: 'running', pid: proc.pid, startedAt: proc.startedAt };
  }

  logPath(_containerId: string, stateDir: string): string {
    return path.join(stateDir, 'container.log');
  }

  async delete(_containerId: string, stateDir: string): Promise<void> {
    this.processes.delete(stateDir);
  }
}

function signalName(signal: string | number): string {
  if (typeof signal === 'number' || /^\d+$/.test(signal)) {
    const n = Number(signal);
    const found = Object.entries(constants.signals).find(([, v]) => v === n);
    if (!found) throw new Error(`fake runtime: unknown signal ${signal}`);
    return found[0];
  }
  const upper = signal.toUpperCase();
  return upper.startsWith('SIG') ? upper : `SIG${upper}`;
}
