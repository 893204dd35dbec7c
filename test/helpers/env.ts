import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** True when the tests run as root (CI does); root-only suites skip with a visible reason otherwise. */
export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
export const rootReason = 'needs root (real mounts, namespaces, cgroups); CI runs as root';
/** CNI's bridge and host-local plugins, where Debian's containernetworking-plugins puts them. */
export const hasCni = existsSync('/usr/lib/cni/bridge') && existsSync('/usr/lib/cni/host-local');
/** Why a test of bridge networks runs (root) or skips (no root, no CNI plugins). */
export const cniReason = !isRoot ? rootReason : hasCni ? 'root' : 'needs /usr/lib/cni (containernetworking-plugins)';

/** True when `cmd` is on PATH. */
export function hasCommand(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** True when python3 can import `modules` (e.g. `docker` from Debian's python3-docker). */
export function hasPythonModules(...modules: string[]): boolean {
  try {
    execFileSync('python3', ['-c', `import ${modules.join(', ')}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Poll `fn` until it returns something truthy; a throw counts as "not yet". On timeout the error
 * names `what`, the last error seen, and what `show` returns (state worth seeing in a failure).
 */
export async function until<T>(what: string, fn: () => Promise<T> | T, timeoutMs = 10_000, show?: () => unknown): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      const why = last ? `: ${(last as Error).message}` : '';
      throw new Error(`timed out waiting for ${what}${why}${show ? `: ${JSON.stringify(await show())}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Deterministic pseudo-random numbers (mulberry32), so every run builds files of the same sizes. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
