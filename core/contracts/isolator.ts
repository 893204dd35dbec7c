import type { LaunchPlan } from './launch';

/** What an isolator sees of the container it is isolating. */
export interface IsolationTarget {
  containerId: string;
  /** The container's state directory (`<root>/containers/<id>`). */
  stateDir: string;
  /** Host config as Docker shapes it (resources, privileged, network mode ...). */
  hostConfig: Record<string, unknown>;
}

/**
 * An isolator contributes to a container's isolation in named phases, always in this order:
 * setup (host side) -> plan (add to the launch plan) -> attach (child pid known, still waiting
 * before exec) -> started; stats on demand; cleanup in reverse config order.
 * The kernel wraps every error with the isolator's URI and the phase that failed.
 */
export interface Isolator {
  readonly name: string;
  setup?(target: IsolationTarget): Promise<void>;
  plan?(target: IsolationTarget, plan: LaunchPlan): Promise<void> | void;
  attach?(target: IsolationTarget, pid: number): Promise<void>;
  started?(target: IsolationTarget, pid: number): Promise<void>;
  stats?(target: IsolationTarget): Promise<Record<string, unknown>>;
  cleanup?(target: IsolationTarget): Promise<void>;
}

export const Isolator = Symbol.for('berth.Isolator');
