/**
 * Host paths the peers write to whatever their flags say: dockerd 20.10 creates
 * /etc/docker/key.json (its trust key dir is fixed), podman /run/containers/networks (netavark's
 * run dir) and cgroups `libpod_parent/conmon`, dockerd cgroups `docker/`, skopeo and podman
 * /var/lib/containers/cache. The bench notes which of these exist before it starts and removes,
 * at the end, those it made.
 */
import { existsSync, promises as fs, readdirSync } from 'node:fs';
import path from 'node:path';

const FILES = ['/etc/docker/key.json', '/etc/cni/net.d/cni.lock', '/etc/containers/networks', '/run/containers', '/var/lib/containers'];
const CGROUP_NAMES = ['docker', 'libpod_parent'];
const CGROUP_ROOT = '/sys/fs/cgroup';

function cgroupCandidates(): string[] {
  const out: string[] = [];
  let hierarchies: string[] = [];
  try {
    hierarchies = readdirSync(CGROUP_ROOT);
  } catch {
    return out;
  }
  // cgroup v2 has its dirs right under the root; v1 and hybrid under each hierarchy.
  for (const name of CGROUP_NAMES) out.push(path.join(CGROUP_ROOT, name));
  for (const h of hierarchies) for (const name of CGROUP_NAMES) out.push(path.join(CGROUP_ROOT, h, name));
  return out;
}

/** Which of the known peer paths exist now. */
export function hostResidueBefore(): Set<string> {
  return new Set([...FILES, ...cgroupCandidates()].filter((p) => existsSync(p)));
}

/** A cgroup dir and its children, deepest first, removed with rmdir (cgroupfs allows nothing else). */
async function rmdirCgroup(dir: string): Promise<void> {
  for (const e of await fs.readdir(dir, { withFileTypes: true })) if (e.isDirectory()) await rmdirCgroup(path.join(dir, e.name));
  await fs.rmdir(dir);
}

/** Remove the known peer paths that did not exist in `before`; returns what was removed and what failed. */
export async function removeHostResidue(before: Set<string>): Promise<{ removed: string[]; failed: string[] }> {
  const removed: string[] = [];
  const failed: string[] = [];
  for (const p of FILES) {
    if (before.has(p) || !existsSync(p)) continue;
    try {
      await fs.rm(p, { recursive: true, force: true });
      removed.push(p);
    } catch (err) {
      failed.push(`${p}: ${(err as Error).message}`);
    }
  }
  for (const p of cgroupCandidates()) {
    if (before.has(p) || !existsSync(p)) continue;
    try {
      await rmdirCgroup(p);
      removed.push(p);
    } catch (err) {
      failed.push(`${p}: ${(err as Error).message}`);
    }
  }
  return { removed, failed };
}
