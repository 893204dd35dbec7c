/**
 * The container state machine (core/containers/state.ts): which operation each state allows, with
 * Docker's words for a refusal (the docker CLI and docker-py show them as they are), and the
 * transitions, which leave State as dockerd's inspect shows it; restart policies and back-off
 * (restart-policy.ts) too.
 */
import { describe, expect, it } from 'vitest';
import { ConflictError, InvalidArgumentError, StateError } from '../../core/contracts/errors';
import { httpStatus } from '../../core/api/router';
import { restartDelay, shouldRestart } from '../../core/containers/restart-policy';
import {
  type ContainerOp,
  assertCan,
  hasStarted,
  markExited,
  markPaused,
  markRemoving,
  markRestartDue,
  markRestartFailed,
  markRestarting,
  markStartFailed,
  markStarted,
  markUnpaused,
} from '../../core/containers/state';
import { type ContainerRecord, type ContainerState, type HostConfigSpec, initialState } from '../../core/containers/record';

const ID = 'c0ffee'.padEnd(64, '0');

function rec(state: Partial<ContainerState>, more: Partial<ContainerRecord> = {}): ContainerRecord {
  return { Id: ID, RestartCount: 0, HostConfig: {}, State: { ...initialState(), ...state }, ...more } as ContainerRecord;
}

const STATES = {
  created: rec({}),
  running: rec({ Status: 'running', Running: true }),
  paused: rec({ Status: 'paused', Running: true, Paused: true }),
  restarting: rec({ Status: 'restarting', Restarting: true }),
  exited: rec({ Status: 'exited' }),
};

/** The refusal message of `op` in every state ('' = allowed). */
function table(op: ContainerOp, opts?: { ref?: string; force?: boolean }): Record<string, string> {
  return Object.fromEntries(
    Object.entries(STATES).map(([name, r]) => {
      try {
        assertCan(op, r, opts);
        return [name, ''];
      } catch (err) {
        return [name, (err as Error).message];
      }
    }),
  );
}

describe('container states', () => {
  it('start refuses only a paused container (a running one is a no-op)', () => {
    expect(table('start')).toEqual({ created: '', running: '', paused: 'cannot start a paused container, try unpause instead', restarting: '', exited: '' });
  });

  it('kill, top and exec need a running process', () => {
    const notRunning = `Container ${ID} is not running`;
    expect(table('kill', { ref: 'web' })).toEqual({
      created: `Cannot kill container: web: ${notRunning}`,
      running: '',
      paused: '',
      restarting: `Cannot kill container: web: ${notRunning}`,
      exited: `Cannot kill container: web: ${notRunning}`,
    });
    for (const op of ['top', 'exec'] as const) expect(table(op)).toEqual({ created: notRunning, running: '', paused: '', restarting: notRunning, exited: notRunning });
  });

  it('pause needs a running, unpaused container; unpause a paused one', () => {
    const notRunning = `Container ${ID} is not running`;
    expect(table('pause')).toEqual({ created: notRunning, running: '', paused: `Container ${ID} is already paused`, restarting: notRunning, exited: notRunning });
    const notPaused = `Container ${ID} is not paused`;
    expect(table('unpause')).toEqual({ created: notPaused, running: notPaused, paused: '', restarting: notPaused, exited: notPaused });
  });

  it('remove refuses a running, paused or restarting container unless forced', () => {
    const refusal = (state: string, advice: string) => `You cannot remove a ${state} container ${ID}. ${advice} the container before attempting removal or force remove`;
    expect(table('remove')).toEqual({ created: '', running: refusal('running', 'Stop'), paused: refusal('paused', 'Unpause and then stop'), restarting: refusal('restarting', 'Stop'), exited: '' });
    expect(Object.values(table('remove', { force: true }))).toEqual(['', '', '', '', '']);
  });

  it('a refusal is a StateError: a 409 and a ConflictError for code that catches those', () => {
    let caught: unknown;
    try {
      assertCan('unpause', STATES.running);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(StateError);
    expect(caught).toBeInstanceOf(ConflictError);
    expect(caught).toMatchObject({ name: 'StateError', kind: 'State', status: 409 });
    expect(httpStatus(caught)).toBe(409);
  });
});

describe('container state transitions', () => {
  const T0 = '2026-01-02T03:04:05.000Z';
  const T1 = '2026-01-02T03:04:09.000Z';

  it('created -> running -> paused -> running -> exited, each as dockerd shows it', () => {
    const r = rec({});
    expect(hasStarted(r)).toBe(false);
    markStarted(r, 4242, T0);
    expect(r.State).toEqual({ ...initialState(), Status: 'running', Running: true, Pid: 4242, StartedAt: T0 });
    expect(hasStarted(r)).toBe(true);
    markPaused(r);
    expect(r.State).toMatchObject({ Status: 'paused', Running: true, Paused: true });
    expect(() => assertCan('pause', r)).toThrow(/already paused/);
    markUnpaused(r);
    expect(r.State).toMatchObject({ Status: 'running', Running: true, Paused: false });
    markExited(r, { exitCode: 137, signal: 'SIGKILL', oomKilled: true, finishedAt: T1 });
    expect(r.State).toEqual({ ...initialState(), Status: 'exited', ExitCode: 137, OOMKilled: true, StartedAt: T0, FinishedAt: T1 });
    expect(hasStarted(r)).toBe(true);
  });

  it('an exit keeps the reason the runtime gives; a new start clears it and the last exit', () => {
    const r = rec({});
    markStarted(r, 1, T0);
    markExited(r, { exitCode: 255, signal: null, oomKilled: false, finishedAt: T1, error: 'the monitor went away' });
    expect(r.State).toMatchObject({ Status: 'exited', ExitCode: 255, Error: 'the monitor went away' });
    markStarted(r, 2, T1);
    expect(r.State).toMatchObject({ Status: 'running', ExitCode: 0, Error: '', OOMKilled: false, FinishedAt: initialState().FinishedAt });
  });

  it('a container that ends while paused is exited, and thawing it later leaves it so', () => {
    const r = rec({});
    markStarted(r, 1, T0);
    markPaused(r);
    markExited(r, { exitCode: 0, signal: null, oomKilled: false, finishedAt: T1 });
    expect(r.State).toMatchObject({ Status: 'exited', Running: false, Paused: false });
    markUnpaused(r);
    expect(r.State.Status).toBe('exited');
  });

  it('exited -> restarting -> (back-off over) -> running counts one restart and clears Restarting', () => {
    const r = rec({});
    markStarted(r, 1, T0);
    markExited(r, { exitCode: 1, signal: null, oomKilled: false, finishedAt: T1 });
    markRestarting(r);
    expect(r.State).toMatchObject({ Status: 'restarting', Restarting: true, Running: false });
    expect(() => assertCan('remove', r)).toThrow(/cannot remove a restarting container/);
    markRestartDue(r);
    expect(r).toMatchObject({ RestartCount: 1, State: { Restarting: false } });
    markStarted(r, 2, T1);
    expect(r.State).toMatchObject({ Status: 'running', Running: true, Restarting: false, Pid: 2 });
  });

  it('a start by hand during the back-off leaves the container running, not restarting', () => {
    const r = rec({});
    markRestarting(r);
    markStarted(r, 3, T1);
    expect(r.State).toMatchObject({ Status: 'running', Restarting: false });
  });

  it('a failed restart leaves the container exited', () => {
    const r = rec({ Status: 'exited', ExitCode: 1 });
    markRestarting(r);
    markRestartDue(r);
    markRestartFailed(r);
    expect(r.State).toMatchObject({ Status: 'exited', Restarting: false, Running: false, ExitCode: 1 });
  });

  it('a failed start keeps the state and records why: 127 for a command that cannot run, 128 otherwise', () => {
    const r = rec({});
    markStartFailed(r, new InvalidArgumentError('exec: "nope": executable file not found in $PATH'));
    expect(r.State).toMatchObject({ Status: 'created', Running: false, ExitCode: 127, Error: 'exec: "nope": executable file not found in $PATH' });
    markStartFailed(r, new Error('isolator.cgroups attach: no room'));
    expect(r.State).toMatchObject({ Status: 'created', ExitCode: 128, Error: 'isolator.cgroups attach: no room' });
  });

  it('removing is the last state a record has', () => {
    const r = rec({ Status: 'exited' });
    markRemoving(r);
    expect(r.State.Status).toBe('removing');
  });
});

describe('restart policies', () => {
  const withPolicy = (RestartPolicy: HostConfigSpec['RestartPolicy'], more: Partial<ContainerRecord> = {}) => rec({ Status: 'exited' }, { HostConfig: { RestartPolicy }, ...more });

  it('no (or none given) never restarts; always and unless-stopped restart after any exit', () => {
    for (const code of [0, 1, 137]) {
      expect(shouldRestart(rec({}), code)).toBe(false);
      expect(shouldRestart(withPolicy({ Name: 'no' }), code)).toBe(false);
      expect(shouldRestart(withPolicy({ Name: 'always' }), code)).toBe(true);
      expect(shouldRestart(withPolicy({ Name: 'unless-stopped' }), code)).toBe(true);
    }
  });

  it('on-failure restarts a non-zero exit, up to MaximumRetryCount restarts (0: no limit)', () => {
    expect(shouldRestart(withPolicy({ Name: 'on-failure' }), 0)).toBe(false);
    expect(shouldRestart(withPolicy({ Name: 'on-failure' }, { RestartCount: 50 }), 1)).toBe(true);
    expect(shouldRestart(withPolicy({ Name: 'on-failure', MaximumRetryCount: 2 }, { RestartCount: 1 }), 1)).toBe(true);
    expect(shouldRestart(withPolicy({ Name: 'on-failure', MaximumRetryCount: 2 }, { RestartCount: 2 }), 1)).toBe(false);
  });

  it('a manual stop ends every policy, except that always still comes back with the daemon', () => {
    for (const Name of ['always', 'unless-stopped', 'on-failure']) expect(shouldRestart(withPolicy({ Name }, { ManuallyStopped: true }), 1)).toBe(false);
    expect(shouldRestart(withPolicy({ Name: 'always' }, { ManuallyStopped: true }), 0, true)).toBe(true);
    expect(shouldRestart(withPolicy({ Name: 'unless-stopped' }, { ManuallyStopped: true }), 0, true)).toBe(false);
    expect(shouldRestart(withPolicy({ Name: 'unless-stopped' }), 0, true)).toBe(true);
  });

  it('the back-off doubles from 100 ms per restart and stops at a minute', () => {
    expect([0, 1, 2, 3, 9].map((n) => restartDelay(rec({}, { RestartCount: n })))).toEqual([100, 200, 400, 800, 51_200]);
    expect(restartDelay(rec({}, { RestartCount: 10 }))).toBe(60_000);
    expect(restartDelay(rec({}, { RestartCount: 500 }))).toBe(60_000);
  });
});
