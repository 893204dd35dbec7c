import { execFileSync } from 'node:child_process';

/** True when the tests run as root (CI does); root-only suites skip with a visible reason otherwise. */
export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
export const rootReason = 'needs root (real mounts, namespaces, cgroups); CI runs as root';

/** True when `cmd` is on PATH. */
export function hasCommand(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
