/**
 * The container state machine, first part: which operation each state allows. The record's flags
 * (State.Running, Paused, Restarting) are the state; `assertCan(op, rec)` is asked before an
 * operation acts and refuses with a StateError (409) in Docker's words, so clients that match
 * dockerd's messages keep working. Transitions still live in manager.ts.
 */
import { StateError } from '../contracts/errors';
import type { ContainerRecord } from './record';

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
