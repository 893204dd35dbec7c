import type { LaunchPlan } from './launch';

export interface RuntimeProcess {
  pid: number;
}

/** Runs a launch plan: the native runtime uses berth's launcher; `runtime.oci` drives runc & co. */
export interface Runtime {
  readonly name: string;
  start(containerId: string, stateDir: string, plan: LaunchPlan): Promise<RuntimeProcess>;
  kill(containerId: string, signal: string): Promise<void>;
  delete(containerId: string): Promise<void>;
}

export const Runtime = Symbol.for('berth.Runtime');
