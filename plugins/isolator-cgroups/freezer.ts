/**
 * Pause and resume: v1's freezer.state (FROZEN / THAWED, with FREEZING in between) or v2's
 * cgroup.freeze (1 / 0, done when cgroup.events says `frozen 1`). Freezing a v2 cgroup works in
 * any v2 directory, so a hybrid host without a v1 freezer still pauses through its cgroup2 mount.
 */
import { BerthError, InvalidArgumentError } from '../../core/plugin';
import { type CgroupDir, type CgroupFs, dirWith, readKeyed, readTrimmed, writeControl } from './cgfs';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The directory that can freeze the container: v1 freezer first, else a v2 one. */
export function freezerDir(dirs: CgroupDir[]): CgroupDir | undefined {
  return dirWith(dirs, 'freezer') ?? dirs.find((d) => d.kind === 'v2');
}

export function isFrozen(fs: CgroupFs, dirs: CgroupDir[]): boolean {
  const d = freezerDir(dirs);
  if (!d) return false;
  if (d.kind === 'v1') return readTrimmed(fs, `${d.dir}/freezer.state`) === 'FROZEN';
  return readKeyed(fs, `${d.dir}/cgroup.events`).frozen === 1;
}

/** Freeze every process of the container; resolves once the kernel says all are frozen. */
export async function freeze(fs: CgroupFs, dirs: CgroupDir[], timeoutMs = 5000): Promise<void> {
  const d = freezerDir(dirs);
  if (!d) throw new InvalidArgumentError('pause needs the freezer cgroup controller (or a cgroup v2 hierarchy), which this host does not have');
  const deadline = Date.now() + timeoutMs;
  let delay = 1;
  if (d.kind === 'v1') {
    for (;;) {
      // A task that is forking can leave the state at FREEZING; writing FROZEN again retries it (as runc does).
      writeControl(fs, `${d.dir}/freezer.state`, 'FROZEN');
      if (readTrimmed(fs, `${d.dir}/freezer.state`) === 'FROZEN') return;
      if (Date.now() > deadline) break;
      await sleep(delay);
      delay = Math.min(delay * 2, 50);
    }
  } else {
    writeControl(fs, `${d.dir}/cgroup.freeze`, '1');
    for (;;) {
      if (readKeyed(fs, `${d.dir}/cgroup.events`).frozen === 1) return;
      if (Date.now() > deadline) break;
      await sleep(delay);
      delay = Math.min(delay * 2, 50);
    }
  }
  thaw(fs, dirs);
  throw new BerthError(`pause: the container's cgroup ${d.dir} did not freeze within ${timeoutMs} ms`);
}

export function thaw(fs: CgroupFs, dirs: CgroupDir[]): void {
  const d = freezerDir(dirs);
  if (!d) throw new InvalidArgumentError('unpause needs the freezer cgroup controller (or a cgroup v2 hierarchy), which this host does not have');
  if (d.kind === 'v1') writeControl(fs, `${d.dir}/freezer.state`, 'THAWED');
  else writeControl(fs, `${d.dir}/cgroup.freeze`, '0');
}
