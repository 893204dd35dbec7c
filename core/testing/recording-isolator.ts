/**
 * An Isolator that isolates nothing and writes down every phase it is called for, so tests can
 * check the order the kernel promises (setup -> plan -> attach -> started; cleanup in reverse
 * config order) and what a failing phase leaves behind.
 */
import type { IsolatorPhase } from '../containers/isolator-chain';
import type { IsolationTarget, Isolator } from '../contracts/isolator';
import type { LaunchPlan } from '../contracts/launch';

export class RecordingIsolator implements Isolator {
  /** Every call, across all instances that share the log: `name phase containerId`. */
  constructor(
    readonly name: string,
    readonly log: string[] = [],
  ) {}
  /** Make this phase throw, with this message. */
  failIn?: { phase: IsolatorPhase; message: string };

  private record(phase: IsolatorPhase, target: IsolationTarget): void {
    this.log.push(`${this.name} ${phase} ${target.containerId}`);
    if (this.failIn?.phase === phase) throw new Error(this.failIn.message);
  }

  async setup(target: IsolationTarget): Promise<void> {
    this.record('setup', target);
  }

  plan(target: IsolationTarget, plan: LaunchPlan): void {
    this.record('plan', target);
    plan.process.env.push(`RECORDED_BY_${this.name.toUpperCase().replace(/\W/g, '_')}=1`);
  }

  async attach(target: IsolationTarget): Promise<void> {
    this.record('attach', target);
  }

  async started(target: IsolationTarget): Promise<void> {
    this.record('started', target);
  }

  async cleanup(target: IsolationTarget): Promise<void> {
    this.record('cleanup', target);
  }
}
