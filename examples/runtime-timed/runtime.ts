import { appendFile } from 'node:fs/promises';
import type { ExitStatus, LaunchPlan, Runtime, RuntimeProcess, RuntimeState, StartHooks } from 'berth/plugin';

/** One line of `timings.jsonl`: how long each part of a start took, in ms. */
export interface StartTiming {
  container: string;
  /** From `start` to the process waiting in its namespaces (the attach window opens). */
  spawnMs: number;
  /** The isolators' attach phase. */
  attachMs: number;
  /** From `start` until the process exec'd. */
  totalMs: number;
}

/**
 * Another runtime with timing around it: every start is timed (spawn, the isolators' attach
 * window, exec) and appended to a JSON-lines file; everything else goes straight through.
 */
export class TimedRuntime implements Runtime {
  readonly name: string;

  constructor(
    private readonly inner: Runtime,
    private readonly timingsFile: string,
  ) {
    this.name = `timed(${inner.name})`;
  }

  async start(containerId: string, stateDir: string, plan: LaunchPlan, hooks: StartHooks = {}): Promise<RuntimeProcess> {
    const t0 = performance.now();
    let spawned = t0;
    let attached = t0;
    const proc = await this.inner.start(containerId, stateDir, plan, {
      attach: async (pid) => {
        spawned = performance.now();
        await hooks.attach?.(pid);
        attached = performance.now();
      },
    });
    const timing: StartTiming = { container: containerId, spawnMs: ms(spawned - t0), attachMs: ms(attached - spawned), totalMs: ms(performance.now() - t0) };
    await appendFile(this.timingsFile, `${JSON.stringify(timing)}\n`);
    return proc;
  }

  kill(containerId: string, stateDir: string, signal: string | number): Promise<void> {
    return this.inner.kill(containerId, stateDir, signal);
  }

  wait(containerId: string, stateDir: string, opts?: { signal?: AbortSignal }): Promise<ExitStatus> {
    return this.inner.wait(containerId, stateDir, opts);
  }

  state(containerId: string, stateDir: string): Promise<RuntimeState> {
    return this.inner.state(containerId, stateDir);
  }

  attachSocket(containerId: string, stateDir: string): string | undefined {
    return this.inner.attachSocket?.(containerId, stateDir);
  }

  logPath(containerId: string, stateDir: string): string {
    return this.inner.logPath(containerId, stateDir);
  }

  delete(containerId: string, stateDir: string): Promise<void> {
    return this.inner.delete(containerId, stateDir);
  }
}

const ms = (n: number) => Math.round(n * 10) / 10;
