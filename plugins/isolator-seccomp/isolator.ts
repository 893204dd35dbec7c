import * as os from 'node:os';
import { seccompChoice, type IsolationTarget, type Isolator, type IsolatorInfo, type LaunchPlan } from '../../core/plugin';
import { compileProfile, type CompiledFilter, type CompileTarget } from './bpf';
import { DOCKER_DEFAULT_PROFILE } from './default-profile';

/**
 * Docker's seccomp behaviour: the default profile for every container, compiled for the
 * capabilities it keeps (earlier isolators set `plan.capabilities`); a profile of its own from
 * `--security-opt seccomp=<json>`; none for `seccomp=unconfined` or, without a profile of its own,
 * `--privileged`. Exec sessions copy the container's plan, filter included.
 */
export class SeccompIsolator implements Isolator {
  readonly name = 'seccomp';
  /** The default profile compiled per capability set: most containers share one or two. */
  private readonly defaults = new Map<string, CompiledFilter>();

  constructor(
    private readonly abi: CompileTarget['abi'],
    private readonly kernel: string = os.release(),
  ) {}

  plan(target: IsolationTarget, plan: LaunchPlan): void {
    const choice = seccompChoice(target.hostConfig.SecurityOpt);
    if (choice.kind === 'unconfined') return;
    if (choice.kind === 'default' && target.hostConfig.Privileged === true) return;
    if (plan.seccomp) throw new Error('plan.seccomp is already set by an earlier isolator; the launch plan holds one filter');
    const compileTarget = { abi: this.abi, capabilities: plan.capabilities, kernel: this.kernel };
    let filter: CompiledFilter;
    if (choice.kind === 'profile') {
      filter = compileProfile(choice.profile, compileTarget);
    } else {
      const key = [...plan.capabilities].sort().join(',');
      if (!this.defaults.has(key)) {
        const compiled = compileProfile(DOCKER_DEFAULT_PROFILE, compileTarget);
        this.defaults.set(key, { ...compiled, oci: deepFreeze(compiled.oci) });
      }
      filter = this.defaults.get(key)!;
    }
    // The default filter is shared by every plan that uses it (frozen: nobody changes it under
    // the others); a copy per container cost ~150 KiB of daemon memory each.
    plan.seccomp = { bpf: filter.bpf, oci: filter.oci };
  }

  /** For /info SecurityOptions, as dockerd lists it. */
  info(): IsolatorInfo {
    return { securityOptions: ['name=seccomp,profile=builtin'] };
  }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
