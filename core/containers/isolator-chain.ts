/**
 * The isolators of one container start, run as one chain of named phases, the way Rollup runs a
 * plugin hook across its plugins: setup and plan per isolator in config order, then attach and
 * started in config order, and cleanup in reverse order. Every error names the isolator's URI
 * and the phase (the original kept as `cause`, its status kept); each phase is timed. The
 * container manager, the test harnesses and the isolator conformance suite all start through it.
 */
import { BerthError, HTTP_STATUS } from '../contracts/errors';
import type { IsolationTarget, Isolator } from '../contracts/isolator';
import type { LaunchPlan } from '../contracts/launch';

export interface NamedIsolator {
  uri: string;
  impl: Isolator;
}

export type IsolatorPhase = 'setup' | 'plan' | 'attach' | 'started' | 'cleanup';

export class IsolatorChain {
  /** Milliseconds per `uri phase` (GET /berth/containers/{id}/timings shows a start's). */
  readonly timings: Record<string, number> = {};
  /** Isolators whose setup ran: a failed start cleans up these only, last first. */
  private readonly prepared: NamedIsolator[] = [];

  constructor(readonly isolators: readonly NamedIsolator[]) {}

  /** Plain isolators (tests, conformance), named `isolator.<name>`. */
  static of(isolators: readonly Isolator[]): IsolatorChain {
    return new IsolatorChain(isolators.map((impl) => ({ uri: `isolator.${impl.name}`, impl })));
  }

  /** Host-side setup, then its part of the plan, for each isolator in turn. */
  async prepare(target: IsolationTarget, plan: LaunchPlan): Promise<void> {
    for (const iso of this.isolators) {
      await this.run(iso, 'setup', () => iso.impl.setup?.(target));
      this.prepared.push(iso);
      await this.run(iso, 'plan', () => iso.impl.plan?.(target, plan));
    }
  }

  /** The process is cloned and waits (for exec: `target.joining`): cgroups, id maps, network. */
  async attach(target: IsolationTarget, pid: number): Promise<void> {
    for (const iso of this.isolators) await this.run(iso, 'attach', () => iso.impl.attach?.(target, pid));
  }

  async started(target: IsolationTarget, pid: number): Promise<void> {
    for (const iso of this.isolators) await this.run(iso, 'started', () => iso.impl.started?.(target, pid));
  }

  /**
   * Cleanup in reverse order: after a failed start, of the isolators that were set up; otherwise
   * (an exit, a removal) of all. One isolator's failure does not stop the others: each error
   * goes to `onError`, or is dropped when there is none.
   */
  async cleanup(target: IsolationTarget, onError?: (err: Error) => void): Promise<void> {
    const which = this.prepared.length ? this.prepared : this.isolators;
    for (const iso of [...which].reverse()) {
      await this.run(iso, 'cleanup', () => iso.impl.cleanup?.(target)).catch((err: Error) => onError?.(err));
    }
  }

  private run<T>(iso: NamedIsolator, phase: IsolatorPhase, fn: () => Promise<T> | T | undefined): Promise<T | undefined> {
    return isolatorCall(iso, phase, fn, this.timings);
  }
}

/**
 * One isolator call (a chain phase, or pause, resume, update ...): its error names the isolator
 * and what was asked of it; with `timings`, the milliseconds add up under `uri what`.
 */
export async function isolatorCall<T>(iso: { uri: string }, what: string, fn: () => Promise<T> | T | undefined, timings?: Record<string, number>): Promise<T | undefined> {
  const t0 = performance.now();
  try {
    return await fn();
  } catch (err) {
    const e = err as BerthError;
    throw new BerthError(`${iso.uri} ${what}: ${e.message}`, e.status ?? HTTP_STATUS.Internal, { cause: err });
  } finally {
    if (timings) timings[`${iso.uri} ${what}`] = (timings[`${iso.uri} ${what}`] ?? 0) + performance.now() - t0;
  }
}
