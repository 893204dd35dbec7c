/**
 * Walking and removing trees that a container or a layer may have made: any depth (deeper than
 * PATH_MAX), any size. The walk holds one directory fd at a time and names entries through it
 * (`/proc/self/fd/<fd>/<name>`, always short), climbs back with `..` checked against the inode it
 * came from, and keeps per level only the names of the directories on the current path. It runs
 * on synchronous calls (microseconds each) and yields to the event loop every few thousand.
 */
import * as fsSync from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { spawnWithChannel, type SpawnedChild } from '../sys/spawn';
import type { Logger } from '../contracts/types';

const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW } = fsSync.constants;
const DIR_FLAGS = O_RDONLY | O_DIRECTORY | O_NOFOLLOW;
/** Calls between two yields to the event loop. */
const YIELD_EVERY = 2000;

/** A short path to `name` inside the directory open as `fd`. */
const at = (fd: number, name?: string) => (name === undefined ? `/proc/self/fd/${fd}` : `/proc/self/fd/${fd}/${name}`);

interface Level {
  /** The directory's identity, checked when the walk climbs back into it through `..`. */
  dev: number;
  ino: number;
  /** Entries of the directory not visited yet (a listing per level on the current path only). */
  pending: string[];
  /** The child directory the walk went down into. */
  current?: string;
}

export interface WalkVisitor {
  /** Any entry below the root but a directory; `entryPath` is short and valid during the call. */
  entry?(entryPath: string, st: fsSync.Stats): void;
  /** A directory below the root, before its contents. */
  enterDir?(entryPath: string, st: fsSync.Stats): void;
  /** A directory below the root (its path through its parent), after its contents. */
  leaveDir?(entryPath: string): void;
}

/**
 * Depth-first walk below the directory `root` (not followed when it is a symlink). Entries are
 * typed by lstat, never followed. Throws ENOTDIR when `root` is not a directory.
 */
export async function walkTree(root: string, visit: WalkVisitor): Promise<void> {
  let fd = fsSync.openSync(root, DIR_FLAGS);
  const levels: Level[] = [];
  let calls = 0;
  const tick = async () => {
    if (++calls % YIELD_EVERY === 0) await new Promise((resolve) => setImmediate(resolve));
  };
  try {
    const st = fsSync.fstatSync(fd);
    levels.push({ dev: st.dev, ino: st.ino, pending: fsSync.readdirSync(at(fd)) });
    while (levels.length > 0) {
      const level = levels[levels.length - 1];
      const name = level.pending.pop();
      if (name === undefined) {
        levels.pop();
        if (levels.length === 0) break;
        // Climb back: the parent must be the very directory the walk came down from.
        const parentFd = fsSync.openSync(at(fd, '..'), DIR_FLAGS);
        const pst = fsSync.fstatSync(parentFd);
        const parent = levels[levels.length - 1];
        fsSync.closeSync(fd);
        fd = parentFd;
        if (pst.dev !== parent.dev || pst.ino !== parent.ino) throw new Error(`walking ${root}: a directory was moved during the walk`);
        visit.leaveDir?.(at(fd, parent.current!));
        await tick();
        continue;
      }
      const entryPath = at(fd, name);
      let st: fsSync.Stats;
      try {
        st = fsSync.lstatSync(entryPath);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
      await tick();
      if (!st.isDirectory()) {
        visit.entry?.(entryPath, st);
        continue;
      }
      visit.enterDir?.(entryPath, st);
      const childFd = fsSync.openSync(entryPath, DIR_FLAGS);
      const cst = fsSync.fstatSync(childFd);
      if (cst.dev !== st.dev || cst.ino !== st.ino) {
        fsSync.closeSync(childFd);
        throw new Error(`walking ${root}: ${name} changed during the walk`);
      }
      level.current = name;
      fsSync.closeSync(fd);
      fd = childFd;
      levels.push({ dev: cst.dev, ino: cst.ino, pending: fsSync.readdirSync(at(fd)) });
    }
  } finally {
    fsSync.closeSync(fd);
  }
}

/**
 * rm -rf for trees of any depth: nothing, ENOENT included, is an error but an entry that cannot
 * be removed. Never follows a symlink (the root included: a symlink is itself unlinked).
 */
export async function removeTree(target: string): Promise<void> {
  let st: fsSync.Stats;
  try {
    st = fsSync.lstatSync(target);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (st.isDirectory()) {
    await walkTree(target, {
      entry: (p) => unlinkQuiet(p),
      leaveDir: (p) => rmdirQuiet(p),
    });
    rmdirQuiet(target);
  } else unlinkQuiet(target);
}

function unlinkQuiet(p: string): void {
  try {
    fsSync.unlinkSync(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

function rmdirQuiet(p: string): void {
  try {
    fsSync.rmdirSync(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/** Where what cannot be removed is moved aside, below berth's state root; `system check` lists it. */
export function quarantineDir(root: string): string {
  return path.join(root, 'quarantine');
}

/** The trees in the quarantine (full paths). */
export async function listQuarantined(root: string): Promise<string[]> {
  const dir = quarantineDir(root);
  const names = await fsSync.promises.readdir(dir).catch(() => [] as string[]);
  return names.sort().map((n) => path.join(dir, n));
}

/** A quarantine directory (quarantineDir) and where to log what goes there. */
export interface Quarantine {
  dir: string;
  log?: Logger;
}

/**
 * removeTree; when that fails, the tree is moved aside into the quarantine (same filesystem: a
 * rename) and the failure logged, so the caller (a removal, berthd's start) goes on.
 */
export async function removeOrQuarantine(target: string, quarantine: Quarantine): Promise<void> {
  try {
    await removeTree(target);
  } catch (err) {
    fsSync.mkdirSync(quarantine.dir, { recursive: true, mode: 0o700 });
    const moved = path.join(quarantine.dir, `${path.basename(target)}-${randomBytes(4).toString('hex')}`);
    fsSync.renameSync(target, moved);
    quarantine.log?.warn('could not remove a tree: moved it to quarantine', { path: target, quarantined: moved, error: (err as Error).message });
  }
}

/**
 * Trees already renamed out of the way (a driver's tmp-rm-*), deleted after the call that
 * discarded them has returned: `rm` and `run --rm` answer once the writable layer is renamed,
 * not once each of its files is unlinked. The deleting is GNU rm's, in a process of its own (up
 * to RM_PROCESSES at once), so berthd's event loop does none of it: with the walk below in
 * berthd, each removal held the loop for 1-3 ms, and tens of ms under disk load. rm walks with
 * fts the way removeTree does (descriptor-relative, never following a symlink, any depth); what
 * it cannot delete goes through removeOrQuarantine. A crash before the end leaves the tree to
 * the next recover().
 */
export class BackgroundRemover {
  private readonly pending = new Set<Promise<void>>();
  private readonly queue: { tree: string; done: () => void }[] = [];
  private running = 0;

  constructor(private readonly quarantine: Quarantine) {}

  discard(doomed: string): void {
    const job: Promise<void> = new Promise<void>((done) => {
      this.queue.push({ tree: doomed, done });
      this.next();
    }).finally(() => this.pending.delete(job));
    this.pending.add(job);
  }

  /** Every discarded tree is gone (or quarantined). */
  async settled(): Promise<void> {
    while (this.pending.size) await Promise.all(this.pending);
  }

  private next(): void {
    while (this.running < RM_PROCESSES && this.queue.length) {
      const { tree, done } = this.queue.shift()!;
      this.running++;
      void rmInOwnProcess(tree)
        .then((removed) => (removed ? undefined : removeOrQuarantine(tree, this.quarantine)))
        .catch((err) => this.quarantine.log?.warn('could not remove or quarantine a tree', { path: tree, error: (err as Error).message }))
        .finally(() => {
          this.running--;
          done();
          this.next();
        });
    }
  }
}

const RM_PROCESSES = 4;

/** `rm -rf --one-file-system TREE`: true when it is gone (false also when rm cannot be run). */
async function rmInOwnProcess(tree: string): Promise<boolean> {
  let child: SpawnedChild;
  try {
    child = spawnWithChannel('rm', ['-rf', '--one-file-system', '--', tree]);
  } catch {
    return false;
  }
  child.channel.destroy();
  child.stderr.resume();
  const status = await child.exited;
  child.stderr.destroy();
  return status === 0 && !fsSync.existsSync(tree);
}

/** Bytes a tree occupies on disk (allocated blocks; each hardlinked inode counted once). */
export async function diskUsage(root: string): Promise<number> {
  // Only inodes with more than one link can be met twice: the others need no memory.
  const seenLinks = new Set<string>();
  let total = 0;
  const count = (st: fsSync.Stats) => {
    if (st.nlink > 1 && !st.isDirectory()) {
      const key = `${st.dev}:${st.ino}`;
      if (seenLinks.has(key)) return;
      seenLinks.add(key);
    }
    total += st.blocks * 512;
  };
  let rootSt: fsSync.Stats;
  try {
    rootSt = fsSync.lstatSync(root);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
  count(rootSt);
  if (!rootSt.isDirectory()) return total;
  await walkTree(root, { entry: (_p, st) => count(st), enterDir: (_p, st) => count(st) });
  return total;
}

/** Reads a stream to its end, discarding the data; rejects if the stream errors. */
export async function drain(stream: Readable): Promise<void> {
  for await (const _chunk of stream) {
    // discard
  }
}

/**
 * Bytes used by each entry of a driver's directory (`tmp-*` work in progress left out), measured
 * at `entry/sub`: what storage drivers report from `usage()` for layers and containers.
 */
export async function usageByEntry(dir: string, sub = '', key: (name: string) => string = (n) => n): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const name of await fsSync.promises.readdir(dir)) {
    if (!name.startsWith('tmp-')) out[key(name)] = await diskUsage(path.join(dir, name, sub));
  }
  return out;
}
