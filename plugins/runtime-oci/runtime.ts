/**
 * `runtime.oci`: runs a launch plan with an OCI runtime binary (runc) through its CLI.
 *
 * start: translate the plan into `<stateDir>/oci-bundle/config.json`, then spawn a small detached
 * shell monitor (its own session, so it outlives berthd) that runs
 *   runc run --keep --bundle B ID        stdout/stderr -> two raw files in the state dir
 * and, when runc returns the container's exit status, reads the memory cgroup's oom_kill count,
 * deletes the runc container and writes `oci-exit` (JSON) atomically.
 *
 * The attach window: a `createRuntime` hook (runc runs it after the namespaces and cgroups exist,
 * while the container's init still waits, before pivot_root) writes runc's state JSON (with the
 * pid) to `oci-created` and blocks reading the fifo `oci-go`. berthd runs hooks.attach(pid) and
 * answers `go` (or `abort`, and the hook fails, so runc kills the container and fails). A
 * `poststart` hook touches `oci-started` once the process exec'd. This is runc's own create/start
 * split, but with runc staying in the foreground as the process's parent: a detached
 * `runc create` reparents the container to init and its exit status is lost.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  BerthError,
  StartFailure,
  ConflictError,
  InvalidArgumentError,
  NotImplementedError,
  LOG_FILE,
  processStartTime,
  type LaunchPlan,
  type Logger,
  type ExitStatus,
  type Runtime,
  type RuntimeProcess,
  type RuntimeState,
  type StartHooks,
} from '../../core/plugin';
import { AttachServers } from './attach-server';
import { RAW_STDERR, RAW_STDOUT } from './logs';
import { BUNDLE_DIR, CREATED, CREATE_HOOK, EXIT, GO_FIFO, MONITOR_SCRIPT, RECORD, RUNC_LOG, STARTED, START_HOOK, answerHook, exists, readRuntimeState, waitForFile, type StartRecord } from './monitor';
import { buildSpec, cgroupsPathFor, unsupportedParts } from './spec';

const execFileP = promisify(execFile);

export interface OciRuntimeConfig {
  /** The OCI runtime binary: a name on PATH or an absolute path. */
  binary: string;
  /** runc's `--root` (its state); default `<plugin state dir>/runc`. */
  root: string;
  /** Seconds the createRuntime hook waits for berthd's go-ahead. */
  hookTimeout: number;
}

export class OciRuntime implements Runtime {
  readonly name = 'oci';
  private readonly attach = new AttachServers();

  constructor(
    private readonly config: OciRuntimeConfig,
    private readonly pluginDir: string,
    private readonly log?: Logger,
  ) {}

  private runc(args: string[]): Promise<{ stdout: string; stderr: string }> {
    return execFileP(this.config.binary, ['--root', this.config.root, ...args], { maxBuffer: 8 << 20 });
  }

  /** Short socket paths (a state dir path may be longer than a unix socket path may be). */
  attachSocket(_containerId: string, stateDir: string): string {
    return join(this.pluginDir, 'attach', `${createHash('sha256').update(stateDir).digest('hex').slice(0, 16)}.sock`);
  }

  logPath(_containerId: string, stateDir: string): string {
    return join(stateDir, LOG_FILE);
  }

  async start(containerId: string, stateDir: string, plan: LaunchPlan, hooks: StartHooks = {}): Promise<RuntimeProcess> {
    if (plan.joinNamespaces && Object.keys(plan.joinNamespaces).length) {
      throw new NotImplementedError(`runtime.oci does not run exec sessions yet (container process ${containerId}); use runtime: 'native' for exec`);
    }
    if (plan.process.openStdin) this.log?.warn('runtime.oci: stdin is not connected (OpenStdin ignored)', { container: containerId });
    const skipped = unsupportedParts(plan);
    if (skipped.length) this.log?.warn('runtime.oci: plan parts an OCI runtime cannot carry out', { container: containerId, parts: skipped });

    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    await this.attach.close(stateDir);
    // A restart reuses the state dir: nothing of the previous run may answer for this one.
    await Promise.all([CREATED, STARTED, GO_FIFO, EXIT, RECORD, RUNC_LOG, RAW_STDOUT, RAW_STDERR, 'oci-log-offsets.json'].map((f) => rm(join(stateDir, f), { force: true })));
    await this.runc(['delete', '--force', containerId]).catch(() => undefined);

    const bundle = join(stateDir, BUNDLE_DIR);
    await mkdir(bundle, { recursive: true, mode: 0o700 });
    const spec = buildSpec(plan, {
      cgroupsPath: cgroupsPathFor(plan.cgroupPaths),
      hooks: {
        createRuntime: [{ path: '/bin/sh', args: ['sh', '-c', CREATE_HOOK, stateDir], timeout: this.config.hookTimeout }],
        poststart: [{ path: '/bin/sh', args: ['sh', '-c', START_HOOK, stateDir] }],
      },
    });
    await writeFile(join(bundle, 'config.json'), JSON.stringify(spec, null, 2), { mode: 0o600 });
    await execFileP('mkfifo', ['-m', '600', join(stateDir, GO_FIFO)]);

    const oomFile = plan.oomCgroup ? join(plan.oomCgroup, plan.oomCgroup.includes('/unified') || !plan.oomCgroup.includes('/memory') ? 'memory.events' : 'memory.oom_control') : '';
    await this.serveAttach(stateDir, plan.logPath ?? this.logPath(containerId, stateDir));
    const out = await open(join(stateDir, RAW_STDOUT), 'a', 0o600);
    const err = await open(join(stateDir, RAW_STDERR), 'a', 0o600);
    let monitorPid: number;
    try {
      const child = spawn('/bin/sh', ['-c', MONITOR_SCRIPT, 'berth-oci-monitor', this.config.binary, this.config.root, bundle, containerId, stateDir, oomFile], {
        detached: true,
        stdio: ['ignore', out.fd, err.fd],
      });
      child.on('error', () => undefined);
      child.unref();
      if (!child.pid) throw new BerthError(`container ${containerId}: cannot run /bin/sh for the runtime.oci monitor`);
      monitorPid = child.pid;
    } finally {
      await out.close();
      await err.close();
    }

    const failed = async (what: string): Promise<never> => {
      await this.attach.close(stateDir);
      const reason = await this.runcError(stateDir);
      const message = reason ?? what;
      if (!/^exec: /.test(message)) throw new BerthError(`container ${containerId}: ${message}`);
      // runc has no codes for why its exec failed: its Go error text is all there is.
      const notFound = /executable file not found|no such file or directory/.test(message);
      throw new StartFailure(`container ${containerId}: ${message}`, notFound ? 'command-not-found' : 'command-not-executable');
    };

    const first = await waitForFile(stateDir, [CREATED, EXIT]);
    if (first === EXIT) return failed('runc exited before the process was created');
    const created = JSON.parse(await readFile(join(stateDir, CREATED), 'utf8')) as { pid: number };
    try {
      await hooks.attach?.(created.pid);
    } catch (e) {
      await answerHook(join(stateDir, GO_FIFO), 'abort');
      await waitForFile(stateDir, [EXIT]).catch(() => undefined);
      await this.attach.close(stateDir);
      throw e;
    }
    await answerHook(join(stateDir, GO_FIFO), 'go');
    const second = await waitForFile(stateDir, [STARTED, EXIT]);
    if (second === EXIT && !(await exists(join(stateDir, STARTED)))) return failed('the process exited before it started');
    const record: StartRecord = {
      pid: created.pid,
      pidStartTime: processStartTime(created.pid) ?? 0,
      monitorPid,
      monitorStartTime: processStartTime(monitorPid) ?? 0,
      startedAt: new Date().toISOString(),
    };
    await writeFile(join(stateDir, RECORD), JSON.stringify(record));
    return { pid: record.pid, monitorPid, startedAt: record.startedAt };
  }

  /** The last error runc logged (its log is JSON lines), trimmed to the part a person needs. */
  private async runcError(stateDir: string): Promise<string | undefined> {
    const text = await readFile(join(stateDir, RUNC_LOG), 'utf8').catch(() => '');
    const errors = text
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        try {
          return JSON.parse(l) as { level?: string; msg?: string };
        } catch {
          return {};
        }
      })
      .filter((e) => e.level === 'error' || e.level === 'fatal');
    const msg = errors.at(-1)?.msg;
    if (!msg) return undefined;
    const exec = msg.indexOf('exec: ');
    return exec >= 0 ? msg.slice(exec) : msg;
  }

  private serveAttach(stateDir: string, logPath: string): Promise<void> {
    return this.attach.open(stateDir, this.attachSocket('', stateDir), logPath, (signal) => void this.killByStateDir(stateDir, signal).catch(() => undefined));
  }

  private containerIdOf(stateDir: string): Promise<string | undefined> {
    // runc names the container by the id berth gave it; the created record has it.
    return readFile(join(stateDir, CREATED), 'utf8').then(
      (t) => (JSON.parse(t) as { id?: string }).id,
      () => undefined,
    );
  }

  private async killByStateDir(stateDir: string, signal: number): Promise<void> {
    const id = await this.containerIdOf(stateDir);
    if (id) await this.kill(id, stateDir, signal);
  }

  async kill(containerId: string, stateDir: string, signal: string | number): Promise<void> {
    const sig = signalName(signal);
    const state = await this.state(containerId, stateDir);
    if (state.status !== 'running') throw new ConflictError(`container ${containerId} is not running`);
    try {
      await this.runc(['kill', containerId, sig]);
    } catch (err) {
      const text = `${(err as { stderr?: string }).stderr ?? ''}${(err as Error).message}`;
      if (/not running|does not exist|stopped/i.test(text)) throw new ConflictError(`container ${containerId} is not running`);
      throw new BerthError(`container ${containerId}: runc kill ${sig} failed: ${text.trim()}`);
    }
  }

  async wait(containerId: string, stateDir: string, opts: { signal?: AbortSignal } = {}): Promise<ExitStatus> {
    const state = await this.state(containerId, stateDir);
    if (state.status === 'absent') throw new ConflictError(`container ${containerId} was never started`);
    // A restarted berthd picks the log and the attach socket up again.
    if (state.status === 'running') await this.serveAttach(stateDir, this.logPath(containerId, stateDir)).catch(() => undefined);
    if (state.status === 'running') await waitForFile(stateDir, [EXIT], opts.signal);
    const final = await this.state(containerId, stateDir);
    const exit = final.exit ?? { exitCode: 255, signal: null, oomKilled: false, finishedAt: new Date().toISOString(), error: 'runtime.oci: no exit status recorded' };
    await this.attach.close(stateDir, exit);
    return exit;
  }
  state(_containerId: string, stateDir: string): Promise<RuntimeState> {
    return readRuntimeState(stateDir);
  }

  async delete(containerId: string, stateDir: string): Promise<void> {
    const state = await this.state(containerId, stateDir);
    if (state.status === 'running') throw new ConflictError(`container ${containerId} is still running: kill it first`);
    await this.attach.close(stateDir);
    const cgroupsPath = await readFile(join(stateDir, BUNDLE_DIR, 'config.json'), 'utf8')
      .then((t) => JSON.parse(t).linux?.cgroupsPath as string | undefined)
      .catch(() => undefined);
    await this.runc(['delete', '--force', containerId]).catch(() => undefined);
    if (cgroupsPath) await removeNamedParents(cgroupsPath);
    await Promise.all(
      [BUNDLE_DIR, CREATED, `${CREATED}.tmp`, STARTED, GO_FIFO, EXIT, `${EXIT}.tmp`, RECORD, RUNC_LOG, RAW_STDOUT, RAW_STDERR, 'oci-log-offsets.json'].map((f) =>
        rm(join(stateDir, f), { force: true, recursive: true }),
      ),
    );
  }
  /** Stop serving attach sockets (berthd shutting down); containers keep running. */
  close(): Promise<void> {
    return this.attach.closeAll();
  }
}

/**
 * runc also puts the container into the controller-less named hierarchies (name=systemd on v1
 * hosts), making the parents of a relative cgroupsPath there, and its delete removes only the
 * container's own dir. isolator.cgroups, which owns the parents elsewhere, does not manage named
 * hierarchies, so their now-empty parents are removed here (one still in use refuses: kept).
 */
async function removeNamedParents(cgroupsPath: string): Promise<void> {
  if (cgroupsPath.startsWith('/') || !cgroupsPath.includes('/')) return;
  const own = await readFile('/proc/self/cgroup', 'utf8').catch(() => '');
  for (const line of own.split('\n')) {
    const m = /^\d+:name=([^:]+):(.*)$/.exec(line);
    if (!m) continue;
    const parts = cgroupsPath.split('/').filter(Boolean).slice(0, -1);
    for (let n = parts.length; n > 0; n--) {
      try {
        await rmdir(join('/sys/fs/cgroup', m[1], m[2], ...parts.slice(0, n)));
      } catch {
        break;
      }
    }
  }
}

/** `SIGTERM`, `TERM`, `15` -> what runc kill accepts (it takes names and numbers). */
export function signalName(signal: string | number): string {
  if (typeof signal === 'number' || /^\d+$/.test(signal)) {
    const n = Number(signal);
    if (n > 0 && n < 65) return String(n);
  } else if (/^(SIG)?[A-Z0-9+-]+$/i.test(signal)) {
    return signal.toUpperCase().startsWith('SIG') ? signal.toUpperCase() : `SIG${signal.toUpperCase()}`;
  }
  throw new InvalidArgumentError(`invalid signal: ${JSON.stringify(signal)}`);
}
