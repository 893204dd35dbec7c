import type { LaunchPlan } from './launch';

/** What an isolator sees of the container it is isolating. */
export interface IsolationTarget {
  containerId: string;
  /** The container's state directory (`<root>/containers/<id>`). */
  stateDir: string;
  /** Host config as Docker shapes it (resources, privileged, network mode ...). */
  hostConfig: Record<string, unknown>;
  /** Set in `attach` when the process joins a running container (exec) instead of starting it. */
  joining?: boolean;
}

/**
 * An isolator contributes to a container's isolation in named phases, always in this order:
 * setup (host side) -> plan (add to the launch plan) -> attach (child pid known, still waiting
 * before exec) -> started; stats on demand; cleanup in reverse config order.
 * The kernel wraps every error with the isolator's URI and the phase that failed.
 */
/** An isolator's part of GET /info; every isolator is asked, none is named. */
export interface IsolatorInfo {
  /** Entries of Docker's SecurityOptions, e.g. `name=seccomp,profile=builtin`. */
  securityOptions?: string[];
  /** A resource isolator's cgroup layout (the first isolator that reports one is the host's). */
  cgroups?: { version: '1' | '2' | 'hybrid'; driver: string; controllers: string[] };
}

export interface Isolator {
  readonly name: string;
  setup?(target: IsolationTarget): Promise<void>;
  plan?(target: IsolationTarget, plan: LaunchPlan): Promise<void> | void;
  attach?(target: IsolationTarget, pid: number): Promise<void>;
  started?(target: IsolationTarget, pid: number): Promise<void>;
  stats?(target: IsolationTarget): Promise<Record<string, unknown>>;
  cleanup?(target: IsolationTarget): Promise<void>;
  /** berthd is shutting down: release host-side state not tied to one container. */
  close?(): Promise<void> | void;

  // Optional capabilities of resource isolators (isolator.cgroups has them all).
  /** What the isolator found on this host and applies, for `berth info` (GET /info). */
  info?(): IsolatorInfo;
  /** Freeze every process of the container; resolves once the kernel reports it frozen. */
  pause?(target: IsolationTarget): Promise<void>;
  resume?(target: IsolationTarget): Promise<void>;
  /** Host pids of the container's processes (`berth top`). */
  pids?(target: IsolationTarget): number[] | Promise<number[]>;
  /** Change limits of a running container; only the fields present change (Docker's update body). */
  update?(target: IsolationTarget, resources: Record<string, unknown>): Promise<void>;
}

export const Isolator = Symbol.for('berth.Isolator');
