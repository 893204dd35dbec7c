/** Waiting for a container to end, per Docker's wait conditions (POST /containers/{id}/wait). */
import { CanceledError } from '../contracts/errors';
import type { ExitStatus } from '../contracts/runtime';
import type { ContainerContext } from './context';

export type WaitCondition = 'not-running' | 'next-exit' | 'removed';

export interface WaitResult {
  StatusCode: number;
  Error?: { Message: string };
}

/** Resolves with the exit code once `condition` holds; `signal` gives up waiting. */
export async function waitFor(ctx: ContainerContext, ref: string, condition: WaitCondition = 'not-running', signal?: AbortSignal): Promise<WaitResult> {
  const rec = ctx.store.get(ref);
  const id = rec.Id;
  const result = () => {
    const r = ctx.store.find(id) ?? rec;
    return { StatusCode: r.State.ExitCode, ...(r.State.Error ? { Error: { Message: r.State.Error } } : {}) };
  };
  if (condition === 'not-running' && !rec.State.Running) return result();
  const events = ctx.events;
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      events.off('exit', onExit);
      events.off('destroy', onDestroy);
      signal?.removeEventListener('abort', onAbort);
    };
    const onExit = (eid: string, exit: ExitStatus) => {
      if (eid !== id || condition === 'removed') return;
      cleanup();
      resolve({ StatusCode: exit.exitCode, ...(exit.error ? { Error: { Message: exit.error } } : {}) });
    };
    const onDestroy = (eid: string) => {
      if (eid !== id) return;
      cleanup();
      resolve(result());
    };
    const onAbort = () => {
      cleanup();
      reject(new CanceledError('wait cancelled'));
    };
    events.on('exit', onExit);
    events.on('destroy', onDestroy);
    signal?.addEventListener('abort', onAbort);
  });
}
