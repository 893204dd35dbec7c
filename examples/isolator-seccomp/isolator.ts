import type { IsolationTarget, Isolator, LaunchPlan, SeccompSpec } from 'berth/plugin';
import type { BuiltFilter } from './bpf';

export interface SeccompConfig {
  /** Syscall names refused with EPERM. */
  deny: string[];
  /** Syscall names refused with ENOSYS (clone3, so libc falls back to clone). */
  enosys: string[];
}

/** Docker's opt-out: `--security-opt seccomp=unconfined` (older clients write `seccomp:unconfined`). */
function unconfined(hostConfig: Record<string, unknown>): boolean {
  const opts = hostConfig.SecurityOpt;
  return Array.isArray(opts) && opts.some((o) => o === 'seccomp=unconfined' || o === 'seccomp:unconfined');
}

export class SeccompIsolator implements Isolator {
  readonly name = 'seccomp';
  private readonly spec: SeccompSpec;

  /** The filter is the same for every container: built once at init, copied into each plan. */
  constructor(filter: BuiltFilter) {
    this.spec = { bpf: filter.bpf, oci: filter.oci };
  }

  /** Plan phase only: the launcher (or runc) installs the filter as the last step before exec. */
  plan(target: IsolationTarget, plan: LaunchPlan): void {
    if (unconfined(target.hostConfig)) return;
    if (plan.seccomp) throw new Error('plan.seccomp is already set by an earlier isolator; the launch plan holds one filter');
    plan.seccomp = { bpf: this.spec.bpf, oci: structuredClone(this.spec.oci) };
  }
}
