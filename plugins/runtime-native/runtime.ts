/**
 * The native runtime: runs a launch plan with berth's own launcher (core/launcher/launch/).
 *
 * start: write the plan into the state dir, spawn the launcher detached (its own session, stdio
 * not tied to berthd), read `pid N` from its status channel (fd 3), run the attach hook while the
 * child waits, answer `go`, and resolve on `started N`. The launcher's parent half double-forks
 * into the monitor, which nobody but init reaps, so containers outlive berthd. Everything later
 * (kill, wait, state) goes through the state dir and the monitor's attach socket, so a restarted
 * berthd needs nothing from the berthd that started the container.
 */
import { watch, type FSWatcher } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import {
  connectUnix,
  BerthError,
  ConflictError,
  InvalidArgumentError,
  START_FAILURE_EXIT_CODES,
  StartFailure,
  type StartFailureReason,
  ATTACH_SOCKET,
  EXIT_FILE,
  LOG_FILE,
  PLAN_FILE,
  RUNTIME_FILE,
  isSameProcess,
  launcherBinary,
  readExitRecord,
  readMonitorRecord,
  serializePlan,
  signalFrame,
  spawnWithChannel,
  type SpawnedChild,
  type LaunchPlan,
  type ExitStatus,
  type Runtime,
  type RuntimeProcess,
  type RuntimeState,
  type StartHooks,
} from '../../core/plugin';

export interface NativeRuntimeConfig {
  /** Path of the launcher binary; default: the one `npm run build` compiled. */
  launcher?: string;
  /** How often `wait` re-checks the state dir when no file event arrives (ms). */
  pollIntervalMs: number;
}

/** `SIGTERM`, `TERM`, `15` -> 15. Throws naming a signal it does not know. */
export function signalNumber(signal: string | number): number {
  if (typeof signal === 'number' || /^\d+$/.test(signal)) {
    const n = Number(signal);
    if (n > 0 && n < 65) return n;
  } else {
    const name = signal.toUpperCase().startsWith('SIG') ? signal.toUpperCase() : `SIG${signal.toUpperCase()}`;
    const n = (osConstants.signals as Record<string, number>)[name];
    if (n) return n;
  }
  throw new InvalidArgumentError(`invalid signal: ${JSON.stringify(signal)}`);
}

/** How often a watched wait looks for a monitor that died without recording an exit. */
const VANISHED_MONITOR_POLL_MS = 5000;

export class NativeRuntime implements Runtime {
  readonly name = 'native';

  constructor(private readonly config: NativeRuntimeConfig) {}

  async start(containerId: string, stateDir: string, plan: LaunchPlan, hooks: StartHooks = {}): Promise<RuntimeProcess> {
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    // A restart reuses the state dir: the previous run's records must not answer for this one.
    await Promise.all([RUNTIME_FILE, EXIT_FILE, ATTACH_SOCKET].map((f) => rm(join(stateDir, f), { force: true })));
    const planFile = join(stateDir, PLAN_FILE);
    await writeFile(planFile, serializePlan(plan, { stateDir }), { mode: 0o600 });

    const binary = this.config.launcher ?? launcherBinary();
    // Shared namespaces (container:<id> modes): the launcher runs inside them, so its clone inherits them.
    // A shared pid namespace is the plan's (pid-namespace): entered here, the monitor would be in it too.
    const enter = Object.entries(plan.enterNamespaces ?? {})
      .filter(([type]) => type !== 'pid')
      .map(([type, path]) => `--${type}=${path}`);
    const [program, args] = enter.length ? ['nsenter', [...enter, '--', binary, planFile]] : [binary, [planFile]];
    let child: SpawnedChild;
    try {
      child = spawnWithChannel(program, args);
    } catch (err) {
      throw new BerthError(`container ${containerId}: cannot run the launcher ${binary}: ${(err as Error).message}`);
    }
    const { channel: status, stderr } = child;
    let stderrText = '';
    stderr.on('data', (d: Buffer) => {
      if (stderrText.length < 4096) stderrText += d.toString();
    });

    return new Promise<RuntimeProcess>((resolve, reject) => {
      let buffered = '';
      let settled = false;
      let childPid = 0;
      const finish = (err: Error | null, value?: RuntimeProcess) => {
        if (settled) return;
        settled = true;
        status.destroy();
        stderr.destroy();
        if (err) reject(err);
        else resolve(value!);
      };
      const failure = (message: string) => new BerthError(`container ${containerId}: ${message}`);
      /** Why the command cannot run, from the launcher's `reason CODE` line (docker run's 127, 126) before its `error`. */
      let reason: StartFailureReason | undefined;
      let startError: Error | undefined;

      const onLine = async (line: string) => {
        const space = line.indexOf(' ');
        const word = space < 0 ? line : line.slice(0, space);
        const rest = space < 0 ? '' : line.slice(space + 1);
        if (word === 'pid') {
          childPid = Number(rest);
          try {
            await hooks.attach?.(childPid);
          } catch (err) {
            status.write('abort\n');
            finish(err instanceof Error ? err : new Error(String(err)));
            return;
          }
          status.write('go\n');
        } else if (word === 'started') {
          const record = await readMonitorRecord(stateDir).catch(() => undefined);
          finish(null, {
            pid: Number(rest),
            monitorPid: record?.monitorPid,
            startedAt: record?.startedAt ?? new Date().toISOString(),
          });
        } else if (word === 'reason') {
          reason = (Object.keys(START_FAILURE_EXIT_CODES) as StartFailureReason[]).find((r) => START_FAILURE_EXIT_CODES[r] === Number(rest));
        } else if (word === 'error') {
          // Settled at the channel's close: the launcher still writes the exit record after this
          // line, and a caller that cleans up at once would race it for the state dir.
          startError = reason ? new StartFailure(`container ${containerId}: ${rest}`, reason) : failure(rest);
        }
      };
      // Lines are handled one after another; the close handler queues behind them.
      let queue: Promise<void> = Promise.resolve();
      status.on('data', (chunk: Buffer) => {
        buffered += chunk.toString();
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          queue = queue.then(() => onLine(line));
        }
      });
      status.on('error', () => undefined);
      status.on('close', () => {
        // The monitor closes the channel after `started`/`error`; closing before means it died.
        queue = queue
          .then(() => new Promise((r) => (stderr.destroyed ? r(undefined) : stderr.once('close', r).once('error', r))))
          .then(() => finish(startError ?? failure(`launcher exited before the process started${stderrText ? `: ${stderrText.trim()}` : ''}`)));
      });
    });
  }

  async kill(containerId: string, stateDir: string, signal: string | number): Promise<void> {
    const sig = signalNumber(signal);
    try {
      // Through the monitor: it signals via a pidfd, so a recycled pid is never hit.
      await sendToMonitor(join(stateDir, ATTACH_SOCKET), signalFrame(sig));
      return;
    } catch {
      // No monitor: the process may still live on as an orphan (the monitor was killed).
    }
    const record = await readMonitorRecord(stateDir);
    if (record && !(await readExitRecord(stateDir)) && isSameProcess(record.pid, record.pidStartTime)) {
      process.kill(record.pid, sig);
      return;
    }
    throw new ConflictError(`container ${containerId} is not running`);
  }

  async wait(containerId: string, stateDir: string, opts: { signal?: AbortSignal } = {}): Promise<ExitStatus> {
    return new Promise<ExitStatus>((resolve, reject) => {
      let watcher: FSWatcher | undefined;
      let timer: NodeJS.Timeout | undefined;
      let done = false;
      let checking = false;
      const finish = (err: Error | null, exit?: ExitStatus) => {
        if (done) return;
        done = true;
        watcher?.close();
        clearInterval(timer);
        opts.signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve(exit!);
      };
      const onAbort = () => finish(opts.signal?.reason instanceof Error ? opts.signal.reason : new Error('wait aborted'));
      const check = async () => {
        if (done || checking) return;
        checking = true;
        try {
          const state = await this.state(containerId, stateDir);
          if (state.exit) finish(null, state.exit);
          else if (state.status === 'absent') finish(new ConflictError(`container ${containerId} was never started`));
        } catch (err) {
          finish(err as Error);
        } finally {
          checking = false;
        }
      };
      if (opts.signal?.aborted) return onAbort();
      opts.signal?.addEventListener('abort', onAbort);
      try {
        // Watch first, then look: an exit between the two is still seen.
        watcher = watch(stateDir, (_event, name) => {
          if (name === EXIT_FILE) void check();
        });
        watcher.on('error', () => undefined);
      } catch {
        // No inotify: the poll below still gets there.
      }
      // With the watch, the poll only finds a monitor that vanished without writing an exit (a
      // SIGKILL): polling every running container 4 times a second cost an idle berthd 17% of a
      // core and 16 MB of young-generation churn with 100 of them.
      timer = setInterval(() => void check(), watcher ? Math.max(this.config.pollIntervalMs, VANISHED_MONITOR_POLL_MS) : this.config.pollIntervalMs);
      void check();
    });
  }

  async state(_containerId: string, stateDir: string): Promise<RuntimeState> {
    const [record, exit] = await Promise.all([readMonitorRecord(stateDir), readExitRecord(stateDir)]);
    const base = record ? { pid: record.pid, monitorPid: record.monitorPid, startedAt: record.startedAt } : {};
    if (exit) return { status: 'exited', ...base, exit };
    if (!record) return { status: 'absent' };
    if (isSameProcess(record.monitorPid, record.monitorStartTime) || isSameProcess(record.pid, record.pidStartTime)) {
      return { status: 'running', ...base };
    }
    // Neither the monitor nor the process is alive and no exit was recorded (host reboot,
    // monitor SIGKILLed together with the container): the status is lost.
    const exitAgain = await readExitRecord(stateDir); // the monitor may have just finished
    if (exitAgain) return { status: 'exited', ...base, exit: exitAgain };
    return {
      status: 'unknown',
      ...base,
      exit: { exitCode: 255, signal: null, oomKilled: false, finishedAt: new Date().toISOString(), error: 'the container monitor vanished without recording an exit status' },
    };
  }

  attachSocket(_containerId: string, stateDir: string): string {
    return join(stateDir, ATTACH_SOCKET);
  }

  logPath(_containerId: string, stateDir: string): string {
    return join(stateDir, LOG_FILE);
  }

  async delete(containerId: string, stateDir: string): Promise<void> {
    const state = await this.state(containerId, stateDir);
    if (state.status === 'running') throw new ConflictError(`container ${containerId} is still running: kill it first`);
    await Promise.all([PLAN_FILE, RUNTIME_FILE, EXIT_FILE, ATTACH_SOCKET, `.${RUNTIME_FILE}.tmp`, `.${EXIT_FILE}.tmp`].map((f) => rm(join(stateDir, f), { force: true })));
  }
}

/** Connect, send one frame, close. Rejects when no monitor listens. */
function sendToMonitor(socketPath: string, frame: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = connectUnix(socketPath);
    sock.once('error', reject);
    sock.once('connect', () => {
      sock.end(frame);
    });
    sock.on('data', () => undefined); // output frames for this one-shot client are not wanted
    sock.once('finish', () => {
      sock.destroy();
      resolve();
    });
  });
}
