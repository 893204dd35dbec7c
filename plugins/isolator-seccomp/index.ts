import { ConfigError, SkipPlugin, definePlugin } from '../../core/plugin';
import { hostAbi } from './bpf';
import { SeccompIsolator } from './isolator';

export { compileProfile, decode, encode, hostAbi, type CompiledFilter, type CompileTarget, type Instruction } from './bpf';
export { DOCKER_DEFAULT_PROFILE } from './default-profile';
export { SeccompIsolator } from './isolator';

/**
 * `isolator.seccomp`: Docker's default seccomp profile for every container, compiled to classic
 * BPF in TypeScript and installed by the launcher (or runc, from the OCI form) right before exec.
 */
export default definePlugin<Record<string, never>, SeccompIsolator>({
  type: 'isolator',
  id: 'seccomp',
  defaults: {},
  parseConfig(raw) {
    const unknown = Object.keys(raw)[0];
    if (unknown !== undefined) throw new ConfigError(unknown, 'unknown key (this plugin has no settings; a container picks its profile with --security-opt seccomp=...)');
    return {};
  },
  init() {
    const abi = hostAbi();
    if (!abi) throw new SkipPlugin(`no syscall table for ${process.arch} (x64 and arm64 only)`);
    return new SeccompIsolator(abi);
  },
});
