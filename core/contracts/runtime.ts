import type { LaunchPlan } from './launch';

/** Hooks the container manager passes to `start`. */
export interface StartHooks {
  /**
   * The process is cloned into its namespaces and waits before doing anything: the place for the
   * isolators' `attach` phase (put `pid` into cgroups, write uid/gid maps, hand the netns to CNI).
   * Throwing aborts the start: the runtime kills the waiting process and rejects.
   */
  attach?(pid: number): Promise<void> | void;
}

export interface RuntimeProcess {
  /** Host pid of the container's process (for exec: of the exec'd process). */
  pid: number;
  /** Host pid of the process that supervises it (the native runtime's monitor), when there is one. */
  monitorPid?: number;
  /** RFC 3339 time the process was started. */
  startedAt: string;
}

export interface ExitStatus {
  /** The exit code, or 128 + N when signal N ended the process (Docker's convention). */
  exitCode: number;
  /** `SIGKILL` etc. when a signal ended the process. */
  signal: string | null;
  /** The kernel's OOM killer hit the container's memory cgroup. */
  oomKilled: boolean;
  /** RFC 3339 time of the exit. */
  finishedAt: string;
  /** Set when the process never ran (start failure) or its end could not be observed. */
  error?: string | null;
}

export interface RuntimeState {
  /**
   * `running`: the process (or its supervisor) is alive. `exited`: the exit status is known.
   * `unknown`: nothing left to observe (e.g. the host rebooted) — treat as exited with an error.
   * `absent`: this state dir was never started.
   */
  status: 'running' | 'exited' | 'unknown' | 'absent';
  pid?: number;
  monitorPid?: number;
  startedAt?: string;
  exit?: ExitStatus;
}

/**
 * Runs a launch plan: the native runtime uses berth's launcher; `runtime.oci` drives runc & co.
 * Each container (and each exec session) has its own state dir, owned by the container manager;
 * the runtime keeps its files there, so a restarted berthd can re-adopt a running container
 * with `state` and `wait` alone.
 */
export interface Runtime {
  readonly name: string;
  /**
   * Start the plan's process: clone, run `hooks.attach(pid)` while it waits, then let it exec.
   * Resolves once the process exec'd; rejects with the launcher's reason when any step failed
   * (e.g. `exec: "foo": executable file not found in $PATH`). Its output goes to the log file,
   * Docker's json-file format, at `logPath(stateDir)` unless the plan sets `logPath`.
   */
  start(containerId: string, stateDir: string, plan: LaunchPlan, hooks?: StartHooks): Promise<RuntimeProcess>;
  /**
   * Send a signal (`SIGTERM`, `TERM`, `9` ...) to the container's process. Never signals a
   * recycled pid. Throws ConflictError when the process is not running.
   */
  kill(containerId: string, stateDir: string, signal: string | number): Promise<void>;
  /** Resolves with the exit status once the process exited and its output reached the log. */
  wait(containerId: string, stateDir: string, opts?: { signal?: AbortSignal }): Promise<ExitStatus>;
  /** What the state dir says now: used to re-adopt containers after a berthd restart. */
  state(containerId: string, stateDir: string): Promise<RuntimeState>;
  /**
   * The Unix socket to attach to the running process (stdin, output, resize), if the runtime
   * offers one; protocol in core/launcher/attach.ts.
   */
  attachSocket?(containerId: string, stateDir: string): string | undefined;
  /** The json-file log the runtime writes for this state dir. */
  logPath(containerId: string, stateDir: string): string;
  /** Remove the runtime's files from the state dir (the process must have exited; kill first). */
  delete(containerId: string, stateDir: string): Promise<void>;
  /** berthd is shutting down: release what is not tied to one container (containers keep running). */
  close?(): Promise<void> | void;
}

export const Runtime = Symbol.for('berth.Runtime');
