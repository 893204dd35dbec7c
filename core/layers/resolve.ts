/**
 * Resolving a path inside a root without ever leaving it, the way a chroot would see it:
 * symlinks in parent components are followed, but absolute targets restart at the root and `..`
 * never climbs above it (like Go's filepath-securejoin / containerd's fs.RootPath). Nothing is
 * cached: every call walks every component again, so a directory swapped for a symlink by an
 * earlier entry of the same layer is seen. The result is a plan, not a safe path: in a tree that
 * someone else changes meanwhile (a running container's), open it with core/sys/inroot.ts.
 */
import * as fsSync from 'node:fs';
import path from 'node:path';
import { InvalidLayerError } from './errors';

const MAX_SYMLINK_HOPS = 255;

export interface Resolved {
  /** Host path of the entry: resolved parents joined with the (unresolved) final component. */
  hostPath: string;
  /** The same, relative to the root, as components. */
  components: string[];
}

/**
 * Resolves `components` (already cleaned by entryComponents) under `root`. Parents are
 * followed through symlinks inside the root; the final component is not followed unless
 * `followFinal`. A parent that exists but is not a directory (or a link to one) is an error.
 * Missing parents are fine: they resolve lexically and the caller creates them.
 */
export async function resolveInRoot(root: string, components: string[], followFinal = false): Promise<Resolved> {
  const resolved: string[] = [];
  const pending = [...components];
  let hops = 0;
  let missing = false;
  const shown = components.join('/');
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === '' || part === '.') continue;
    if (part === '..') {
      resolved.pop();
      continue;
    }
    const isFinal = pending.length === 0;
    if ((isFinal && !followFinal) || missing) {
      resolved.push(part);
      continue;
    }
    const hostPath = path.join(root, ...resolved, part);
    let st;
    try {
      // Synchronous on purpose: an lstat is microseconds, a round trip through libuv's pool is
      // tens, and every entry of every layer resolves each of its parents afresh.
      st = fsSync.lstatSync(hostPath);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOTDIR') throw new InvalidLayerError(`a parent of "${shown}" is not a directory (${resolved.join('/') || '/'})`);
      if (code !== 'ENOENT') throw err;
      missing = true;
      resolved.push(part);
      continue;
    }
    if (st.isSymbolicLink()) {
      if (++hops > MAX_SYMLINK_HOPS) throw new InvalidLayerError(`too many symlinks resolving "${shown}"`);
      let target: string;
      try {
        target = fsSync.readlinkSync(hostPath);
      } catch (err) {
        // No longer a link (the tree is a running container's, changing under us): look again.
        if (!['EINVAL', 'ENOENT'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err;
        pending.unshift(part);
        continue;
      }
      if (target.startsWith('/')) resolved.length = 0;
      pending.unshift(...target.split('/'));
      continue;
    }
    if (!isFinal && !st.isDirectory()) {
      throw new InvalidLayerError(`a parent of "${shown}" is not a directory (${[...resolved, part].join('/')})`);
    }
    resolved.push(part);
  }
  return { hostPath: path.join(root, ...resolved), components: resolved };
}

/** mkdir -p of a resolved parent, component by component, refusing to pass through anything but directories. */
export async function ensureDirs(root: string, components: string[], mode = 0o755): Promise<void> {
  let current = root;
  for (const part of components) {
    current = path.join(current, part);
    try {
      fsSync.mkdirSync(current, mode);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const st = fsSync.lstatSync(current);
      if (!st.isDirectory()) throw new InvalidLayerError(`"${components.join('/')}": ${path.relative(root, current)} is not a directory`);
    }
  }
}
