/**
 * Which operation each container state allows (core/containers/state.ts), with Docker's words for
 * a refusal: the docker CLI and docker-py show them as they are.
 */
import { describe, expect, it } from 'vitest';
import { ConflictError, StateError } from '../../core/contracts/errors';
import { httpStatus } from '../../core/api/router';
import { type ContainerOp, assertCan } from '../../core/containers/state';
import { type ContainerRecord, type ContainerState, initialState } from '../../core/containers/record';

const ID = 'c0ffee'.padEnd(64, '0');

function rec(state: Partial<ContainerState>): ContainerRecord {
  return { Id: ID, State: { ...initialState(), ...state } } as ContainerRecord;
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
    expect(table('kill', { ref: 'web' })).toEqual({ created: `Cannot kill container: web: ${notRunning}`, running: '', paused: '', restarting: `Cannot kill container: web: ${notRunning}`, exited: `Cannot kill container: web: ${notRunning}` });
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
