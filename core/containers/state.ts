/**
 * The container state machine: which operation each state allows, and the transitions between
 * states. The record's flags (State.Running, Paused, Restarting) and State.Status are the state;
 * this file is the only place that writes them. `assertCan(op, rec)` is asked before an operation
 * acts and refuses with a StateError (409) in Docker's words, so clients that match dockerd's
 * messages keep working; the `mark*` functions are the transitions, called once an operation has
 * done its work (the caller saves the record).
 *
 *   created --start--> running --pause--> paused --unpause--> running
 *   running --exit--> exited --(restart policy)--> restarting --start--> running
 *   any --remove--> removing (the record then goes)
 */
import { type BerthError, START_FAILURE_EXIT_CODES, StateError, startFailureReason } from '../contracts/errors';
import type { ExitStatus } from '../contracts/runtime';
import { type ContainerRecord, initialState } from './record';

export type ContainerOp = 'start' | 'kill' | 'pause' | 'unpause' | 'top' | 'exec' | 'remove';

interface Refusal {
  /** What the caller named the container (Docker's kill message repeats it). */
  ref: string;
  /** remove: a force removal stops the container first. */
  force?: boolean;
}

const notRunning = (rec: ContainerRecord) => `Container ${rec.Id} is not running`;

/** For each operation, why the record's state refuses it (undefined: allowed). */
const REFUSALS: Record<ContainerOp, (rec: ContainerRecord, opts: Refusal) => string | undefined> = {
  // Starting a running container is a no-op (Docker's 304); only a paused one is refused.
  start: ({ State: s }) => (s.Running && s.Paused ? 'cannot start a paused container, try unpause instead' : undefined),
  kill: (rec, { ref }) => (rec.State.Running ? undefined : `Cannot kill container: ${ref}: ${notRunning(rec)}`),
  pause: (rec) => (!rec.State.Running ? notRunning(rec) : rec.State.Paused ? `Container ${rec.Id} is already paused` : undefined),
  unpause: (rec) => (rec.State.Paused ? undefined : `Container ${rec.Id} is not paused`),
  top: (rec) => (rec.State.Running ? undefined : notRunning(rec)),
  exec: (rec) => (rec.State.Running ? undefined : notRunning(rec)),
  // A restarting container (between two runs) is running as far as Docker's rm is concerned.
  remove: ({ Id, State: s }, { force }) => {
    if (force || !(s.Running || s.Restarting)) return undefined;
    const state = s.Restarting ? 'restarting' : s.Paused ? 'paused' : 'running';
    return `You cannot remove a ${state} container ${Id}. ${state === 'paused' ? 'Unpause and then stop' : 'Stop'} the container before attempting removal or force remove`;
  },
};

/** Throws a StateError when `rec`'s state does not allow `op`. */
export function assertCan(op: ContainerOp, rec: ContainerRecord, opts: Partial<Refusal> = {}): void {
  const why = REFUSALS[op](rec, { ref: opts.ref ?? rec.Id, force: opts.force });
  if (why) throw new StateError(why);
}

// ---- transitions -----------------------------------------------------------------------------

/** The process runs (a start, or a restart by policy, succeeded). */
export function markStarted(rec: ContainerRecord, pid: number, startedAt: string): void {
  Object.assign(rec.State, {
    Status: 'running',
    Running: true,
    Paused: false,
    Restarting: false,
    OOMKilled: false,
    Pid: pid,
    ExitCode: 0,
    Error: '',
    StartedAt: startedAt,
    FinishedAt: initialState().FinishedAt,
  });
}

/**
 * A start failed before the process ran: the state stays what it was, with the error and
 * dockerd's exit code for it: 127 for a command not found, 126 for one that cannot be run, 127
 * for other refusals of the command (a runtime that gives no reason), 128 for anything else.
 */
export function markStartFailed(rec: ContainerRecord, err: unknown): void {
  const reason = startFailureReason(err);
  rec.State.Error = (err as Error).message;
  rec.State.ExitCode = reason ? START_FAILURE_EXIT_CODES[reason] : (err as BerthError).status === 400 ? 127 : 128;
}

/** The process ended (or was found ended after a berthd restart). */
export function markExited(rec: ContainerRecord, exit: ExitStatus): void {
  Object.assign(rec.State, { Status: 'exited', Running: false, Paused: false, Pid: 0, ExitCode: exit.exitCode, OOMKilled: exit.oomKilled, Error: exit.error ?? '', FinishedAt: exit.finishedAt });
}

/** The cgroup is frozen. */
export function markPaused(rec: ContainerRecord): void {
  Object.assign(rec.State, { Paused: true, Status: 'paused' });
}

/** The cgroup is thawed; a container that ended while frozen stays in the state it ended in. */
export function markUnpaused(rec: ContainerRecord): void {
  Object.assign(rec.State, { Paused: false, Status: rec.State.Running ? 'running' : rec.State.Status });
}

/** The restart policy will start the container again after its back-off. */
export function markRestarting(rec: ContainerRecord): void {
  Object.assign(rec.State, { Restarting: true, Status: 'restarting' });
}

/** The back-off is over: one more run is counted and the start begins. */
export function markRestartDue(rec: ContainerRecord): void {
  rec.RestartCount++;
  rec.State.Restarting = false;
}

/** The policy's start failed: the container stays exited. */
export function markRestartFailed(rec: ContainerRecord): void {
  Object.assign(rec.State, { Restarting: false, Status: 'exited' });
}

/** Removal has begun; the record goes once the container's parts are gone. */
export function markRemoving(rec: ContainerRecord): void {
  rec.State.Status = 'removing';
}

/** Whether the container has ever run (a created one has not: no policy brings it up). */
export function hasStarted(rec: ContainerRecord): boolean {
  return rec.State.StartedAt !== initialState().StartedAt;
}
