/**
 * Mounting a container's overlay at containers/<id>/merged: lowerdir from the layers' short
 * links (l/<link>), then upper and work. Absolute paths when they fit in the one page of options
 * mount(2) takes; else mount(8) from the state dir with relative ones.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { InvalidArgumentError, removeTree, type Syscalls } from '../../core/plugin';

const execFileP = promisify(execFile);
/** The kernel copies at most one page of mount data, NUL included. */
const MAX_MOUNT_DATA = 4095;

export function overlayOptions(lowers: string[], upper: string, work: string, extra: string[]): string {
  return [`lowerdir=${lowers.join(':')}`, `upperdir=${upper}`, `workdir=${work}`, ...extra].join(',');
}

/** `links`: the layers' short names, topmost first ([] for an empty rootfs); `extra`: more options. */
export async function mountContainerOverlay(sys: Syscalls, stateDir: string, containerId: string, links: string[], extra: string[]): Promise<void> {
  const rel = path.join('containers', containerId);
  const abs = (p: string) => path.join(stateDir, p);
  const lowers = links.length === 0 ? [path.join(rel, 'empty')] : links.map((l) => path.join('l', l));
  // A volatile mount leaves work/work/incompat/volatile, and overlayfs refuses that workdir
  // (even after a clean unmount) until it is gone: a later mount of the layer clears it.
  const incompat = abs(path.join(rel, 'work', 'work', 'incompat'));
  const clearedIncompat = async (err: unknown) => (err as NodeJS.ErrnoException).code === 'EINVAL' && (await removeIfThere(incompat));
  const data = overlayOptions(lowers.map(abs), abs(path.join(rel, 'upper')), abs(path.join(rel, 'work')), extra);
  const merged = abs(path.join(rel, 'merged'));
  if (data.length <= MAX_MOUNT_DATA) {
    try {
      sys.mount('overlay', merged, 'overlay', 0, data);
    } catch (err) {
      if (!(await clearedIncompat(err))) throw err;
      sys.mount('overlay', merged, 'overlay', 0, data);
    }
    return;
  }
  const relData = overlayOptions(lowers, path.join(rel, 'upper'), path.join(rel, 'work'), extra);
  if (relData.length > MAX_MOUNT_DATA) {
    throw new InvalidArgumentError(`container ${containerId}: ${links.length} layers do not fit in one page of overlay mount options`);
  }
  const mount = () => execFileP('mount', ['-t', 'overlay', '-o', relData, 'overlay', path.join(rel, 'merged')], { cwd: stateDir });
  try {
    await mount().catch(async (err) => {
      if (!(await removeIfThere(incompat))) throw err;
      await mount();
    });
  } catch (err) {
    const failure = new Error(`mounting overlay for container ${containerId} (${links.length} layers): ${(err as { stderr?: string }).stderr?.trim() || String(err)}`);
    (failure as NodeJS.ErrnoException).code = 'EINVAL';
    throw failure;
  }
}

async function removeIfThere(dir: string): Promise<boolean> {
  try {
    await fs.lstat(dir);
  } catch {
    return false;
  }
  await removeTree(dir);
  return true;
}
