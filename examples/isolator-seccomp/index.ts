/**
 * A third-party-style isolator: every container gets a seccomp filter that refuses the syscalls
 * Docker's default profile keeps from containers (mount, unshare, setns, keyctl, bpf, kexec and
 * module loading, reboot, open_by_handle_at, ...) with EPERM, and clone3 with ENOSYS. It stacks
 * with the built-ins: `isolators: ['namespaces', 'network', 'cgroups', 'seccomp']`.
 *
 * It imports only the public API (`berth/plugin`); the manifest has no side effects at import.
 */
import { ConfigError, definePlugin, SkipPlugin, type Isolator } from 'berth/plugin';
import { buildFilter } from './bpf';
import { SeccompIsolator, type SeccompConfig } from './isolator';
import { DEFAULT_DENY, DEFAULT_ENOSYS, hostArch, SYSCALLS } from './syscalls';

function syscallList(key: string, value: unknown): string[] {
  if (!Array.isArray(value) || value.some((n) => typeof n !== 'string')) {
    throw new ConfigError(key, `expected a list of syscall names, got ${JSON.stringify(value)}`);
  }
  const unknown = value.filter((n) => !Object.hasOwn(SYSCALLS, n));
  if (unknown.length) {
    throw new ConfigError(key, `unknown syscall ${JSON.stringify(unknown[0])}; this plugin knows: ${Object.keys(SYSCALLS).join(', ')}`);
  }
  return value as string[];
}

export default definePlugin<SeccompConfig, Isolator>({
  type: 'isolator',
  id: 'seccomp',
  defaults: { deny: [...DEFAULT_DENY], enosys: [...DEFAULT_ENOSYS] },
  parseConfig(raw) {
    const deny = syscallList('deny', raw.deny ?? DEFAULT_DENY);
    const enosys = syscallList('enosys', raw.enosys ?? DEFAULT_ENOSYS);
    const both = deny.find((n) => enosys.includes(n));
    if (both) throw new ConfigError('enosys', `${JSON.stringify(both)} is in both deny and enosys; name it once`);
    return { deny, enosys };
  },
  init(ctx) {
    const arch = hostArch();
    if (!arch) throw new SkipPlugin(`no syscall table for ${process.arch} (x64 and arm64 only)`);
    return new SeccompIsolator(buildFilter(ctx.config, arch));
  },
});
