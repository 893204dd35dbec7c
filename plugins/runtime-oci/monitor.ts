/**
 * What runs outside berthd for one container: the detached shell monitor around `runc run`, the
 * createRuntime/poststart hooks that make the attach window, the files they leave in the state
 * dir, and reading them back (state, waiting for a file, answering the hook).
 */
import { constants as fsConstants, watch, type FSWatcher } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BerthError, isSameProcess, type RuntimeState } from '../../core/plugin';

export const BUNDLE_DIR = 'oci-bundle';
export const CREATED = 'oci-created';
export const STARTED = 'oci-started';
export const GO_FIFO = 'oci-go';
export const EXIT = 'oci-exit';
export const RECORD = 'oci-runtime.json';
export const RUNC_LOG = 'oci-runc.log';

/** The monitor: $1 binary, $2 runc root, $3 bundle, $4 id, $5 state dir, $6 oom counter file or ''. */
export const MONITOR_SCRIPT = `
"$1" --root "$2" --log "$5/${RUNC_LOG}" --log-format json run --keep --bundle "$3" "$4" </dev/null
code=$?
oom=0
if [ -n "$6" ] && [ -r "$6" ]; then oom=$(sed -n 's/^oom_kill //p' "$6"); fi
"$1" --root "$2" delete --force "$4" >/dev/null 2>&1
printf '{"exitCode":%d,"oomKill":%d,"finishedAt":"%s"}\\n' "$code" "\${oom:-0}" "$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)" > "$5/${EXIT}.tmp"
mv "$5/${EXIT}.tmp" "$5/${EXIT}"
`;

export const CREATE_HOOK = `cat > "$0/${CREATED}.tmp" && mv "$0/${CREATED}.tmp" "$0/${CREATED}" && read answer < "$0/${GO_FIFO}" && [ "$answer" = go ]`;
export const START_HOOK = `: > "$0/${STARTED}"`;

/** What `start` records once the process runs (oci-runtime.json): pids and their start times, so a recycled pid is never taken for it. */
export interface StartRecord {
  pid: number;
  pidStartTime: number;
  monitorPid: number;
  monitorStartTime: number;
  startedAt: string;
}

export const exists = (file: string) =>
  readFile(file).then(
    () => true,
    () => false,
  );

/** The runtime state from the state dir alone (a restarted berthd re-adopts with it). */
export async function readRuntimeState(stateDir: string): Promise<RuntimeState> {
  const [recordText, exitText] = await Promise.all([readFile(join(stateDir, RECORD), 'utf8').catch(() => undefined), readFile(join(stateDir, EXIT), 'utf8').catch(() => undefined)]);
  const record = recordText ? (JSON.parse(recordText) as StartRecord) : undefined;
  const base = record ? { pid: record.pid, monitorPid: record.monitorPid, startedAt: record.startedAt } : {};
  if (exitText) {
    const raw = JSON.parse(exitText) as { exitCode: number; oomKill: number; finishedAt: string };
    return { status: 'exited', ...base, exit: { exitCode: raw.exitCode, signal: null, oomKilled: raw.oomKill > 0, finishedAt: raw.finishedAt, error: null } };
  }
  if (!record) return { status: 'absent' };
  if (isSameProcess(record.monitorPid, record.monitorStartTime) || isSameProcess(record.pid, record.pidStartTime)) return { status: 'running', ...base };
  if (await exists(join(stateDir, EXIT))) return readRuntimeState(stateDir);
  return {
    status: 'unknown',
    ...base,
    exit: { exitCode: 255, signal: null, oomKilled: false, finishedAt: new Date().toISOString(), error: 'the runtime.oci monitor vanished without recording an exit status' },
  };
}

/** Resolve with the first of `names` to appear in `dir` (inotify, with a 50 ms poll behind it). */
export function waitForFile(dir: string, names: string[], signal?: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    let watcher: FSWatcher | undefined;
    let done = false;
    const finish = (err: Error | null, name?: string) => {
      if (done) return;
      done = true;
      watcher?.close();
      clearInterval(timer);
      signal?.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve(name!);
    };
    const onAbort = () => finish(signal?.reason instanceof Error ? signal.reason : new Error('wait aborted'));
    const check = async () => {
      for (const n of names) if (await exists(join(dir, n))) return finish(null, n);
    };
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort);
    try {
      watcher = watch(dir, (_e, name) => {
        if (name && names.includes(name.toString())) void check();
      });
      watcher.on('error', () => undefined);
    } catch {
      /* the poll covers it */
    }
    const timer = setInterval(() => void check(), 50);
    void check();
  });
}

/** Answer the createRuntime hook through its fifo; it may not have opened it yet, so retry. */
export async function answerHook(fifo: string, answer: 'go' | 'abort'): Promise<void> {
  for (let i = 0; i < 400; i++) {
    try {
      const fh = await open(fifo, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK);
      try {
        await fh.write(`${answer}\n`);
      } finally {
        await fh.close();
      }
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENXIO') throw err;
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  throw new BerthError(`runtime.oci: the createRuntime hook never opened ${fifo}`);
}
