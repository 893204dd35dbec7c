/**
 * The writing half of applyLayerTar: one tar entry at a time into the tree at `root`, every path
 * resolved inside the root and every parent pinned by fd before anything is written below it
 * (DESIGN.md section 4). apply.ts feeds it the entries of a parsed, checked tar stream.
 */
import { promises as fs, constants as fsc } from 'node:fs';
import * as fsSync from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type * as tar from 'tar-stream';
import type { ApplyOptions } from './apply';
import { InvalidLayerError } from './errors';
import { entryComponents, hasDotDot, OVERLAY_OPAQUE_XATTR, whiteoutOf } from './names';
import { ensureDirs, resolveInRoot } from './resolve';
import { chmodNoFollow, lstatIn, openDirExact, pinRoot, type PinnedDir } from '../sys/inroot';
import { MAX_MAJOR, MAX_MINOR, S_IFBLK, S_IFCHR, S_IFIFO, syscalls as defaultSyscalls, type Syscalls } from '../sys/syscalls';
import { Coalesce } from '../util/stream';
import { removeTree } from './util';

const PAX_XATTR = 'SCHILY.xattr.';

interface DirTimes {
  components: string[];
  mtime: Date;
}

export class Applier {
  private readonly sys: Syscalls;
  private readonly chown: boolean;
  /**
   * Paths (joined components) this layer created, which an opaque whiteout in merge mode keeps.
   * Only merge mode records them: an overlay layer's directory holds nothing but the layer.
   */
  private readonly added = new Set<string>();
  private readonly dirTimes: DirTimes[] = [];
  /** The root, pinned: the tree may be a running container's, changing while we write to it. */
  private readonly rootDir: PinnedDir;
  /**
   * With `ownTree`: an entry's parent (its components as the tar names them) resolved and pinned.
   * Tar entries come directory by directory, so most entries reuse their predecessor's. Emptied
   * whenever an entry removes or replaces something, the only way a resolved path can change.
   */
  private readonly parents = new Map<string, { components: string[]; dir: PinnedDir }>();
  /** Cached parents forgotten while an entry may still use one: closed once the entry is done. */
  private retired: PinnedDir[] = [];

  constructor(
    private readonly root: string,
    private readonly opts: ApplyOptions,
  ) {
    this.sys = opts.syscalls ?? defaultSyscalls;
    this.chown = opts.chown ?? process.getuid?.() === 0;
    this.rootDir = pinRoot(root);
  }

  close(): void {
    this.forgetParents();
    this.closeRetired();
    this.rootDir.close();
  }

  private forgetParents(): void {
    for (const { dir } of this.parents.values()) this.retired.push(dir);
    this.parents.clear();
  }

  private closeRetired(): void {
    for (const dir of this.retired) dir.close();
    this.retired = [];
  }

  /** The resolved, pinned parent directory of an entry (owned by the caller unless cached). */
  private async parentOf(parentComponents: string[]): Promise<{ components: string[]; dir: PinnedDir; cached: boolean }> {
    const key = parentComponents.join('/');
    const hit = this.parents.get(key);
    if (hit) return { ...hit, cached: true };
    const parent = await resolveInRoot(this.root, parentComponents, true);
    const dir = this.pinDir(parent.components, true);
    if (!this.opts.ownTree) return { components: parent.components, dir, cached: false };
    // A handful of directories is plenty for tar order; keep the fd count small.
    if (this.parents.size >= 16) this.forgetParents();
    this.parents.set(key, { components: parent.components, dir });
    return { components: parent.components, dir, cached: true };
  }

  /**
   * The directory at the tree path `components` (resolved already), pinned, made when missing
   * with `create` (else null when missing): every component a real directory now, none
   * followed, so whatever changed since the resolution, what is written below it stays inside.
   */
  private pinDir(components: string[], create: true): PinnedDir;
  private pinDir(components: string[], create: false): PinnedDir | null;
  private pinDir(components: string[], create: boolean): PinnedDir | null {
    try {
      return openDirExact(this.rootDir, components, create);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? '';
      if (code === 'ENOENT' && !create) return null;
      if (['ELOOP', 'ENOTDIR', 'EXDEV'].includes(code)) throw new InvalidLayerError(`"${components.join('/')}" is not a directory (or stopped being one during the extraction)`);
      throw err;
    }
  }

  async entry(header: Partial<tar.Header> & { name: string; pax?: Record<string, string> }, body: Readable): Promise<void> {
    const name = header.name;
    const components = entryComponents(name);
    if (components.length === 0) {
      // The root itself ("./"): only its metadata could change; ignore like Docker does for "/".
      return;
    }
    const base = components[components.length - 1];
    const wh = whiteoutOf(base, name);
    if (wh) {
      if (hasDotDot(name)) throw new InvalidLayerError(`whiteout ${JSON.stringify(name)} contains ".."`);
      await this.whiteout(components.slice(0, -1), wh.kind === 'opaque' ? null : wh.target, name);
      this.closeRetired();
      return;
    }
    const parent = await this.parentOf(components.slice(0, -1));
    try {
      await this.place(parent.dir, [...parent.components, base], header, body);
    } finally {
      if (!parent.cached) parent.dir.close();
      this.closeRetired();
    }
  }

  /** The entry as `components2` (its resolved tree path), in its pinned parent `dir`. */
  private async place(dir: PinnedDir, components2: string[], header: Partial<tar.Header> & { name: string; pax?: Record<string, string> }, body: Readable): Promise<void> {
    const name = header.name;
    const base = components2[components2.length - 1];
    const target = dir.path(base);
    const xattrs = this.xattrsOf(header, name);
    const type = header.type ?? 'file';
    const mode = (header.mode ?? 0o644) & 0o7777;
    const mtime = header.mtime ?? new Date(0);
    // Metadata calls below are synchronous on purpose: each is microseconds, while a round trip
    // through libuv's pool costs tens, and a layer of small files is thousands of such calls.
    // Directories, files and symlinks are made at once and only on EEXIST is the name looked at
    // (most names are new): what is there goes, unless a directory meets a directory.
    const makeOrReplace = async (make: () => void): Promise<void> => {
      try {
        return make();
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const existing = lstatOrNullSync(target);
      if (existing?.isDirectory() && type === 'directory') return;
      await this.clear(target, existing);
      make();
    };
    switch (type) {
      case 'directory':
        await makeOrReplace(() => fsSync.mkdirSync(target, 0o700));
        break;
      case 'file':
      case 'contiguous-file': {
        // O_EXCL|O_NOFOLLOW: never write through a link planted at the name (what was there went).
        let fd = -1;
        await makeOrReplace(() => void (fd = fsSync.openSync(target, NEW_FILE, 0o600)));
        try {
          await writeFileEntry(fd, body, header.size ?? 0);
          // The fd, not the name: no path lookup, and the very file just written.
          if (this.chown) fsSync.fchownSync(fd, header.uid ?? 0, header.gid ?? 0);
          fsSync.fchmodSync(fd, mode);
          for (const [key, value] of xattrs) this.sys.lsetxattr(target, key, value);
          fsSync.futimesSync(fd, mtime, mtime);
        } finally {
          fsSync.closeSync(fd);
        }
        this.markAdded(components2);
        return;
      }
      case 'symlink': {
        const linkname = header.linkname;
        if (!linkname) throw new InvalidLayerError(`symlink ${JSON.stringify(name)} has no target`);
        await makeOrReplace(() => fsSync.symlinkSync(linkname, target));
        break;
      }
      case 'link': {
        await this.clear(target, lstatOrNullSync(target));
        const linkComponents = entryComponents(header.linkname ?? '');
        if (linkComponents.length === 0) throw new InvalidLayerError(`hardlink ${JSON.stringify(name)} has no target`);
        const source = await resolveInRoot(this.root, linkComponents, false);
        if (source.components.length === 0) throw new InvalidLayerError(`hardlink ${JSON.stringify(name)} points to a directory`);
        const sourceDir = this.pinDir(source.components.slice(0, -1), false);
        if (!sourceDir) throw new InvalidLayerError(`hardlink ${JSON.stringify(name)} points to missing ${JSON.stringify(header.linkname)}`);
        try {
          const sourceBase = source.components[source.components.length - 1];
          const st = lstatIn(sourceDir, sourceBase);
          if (!st) throw new InvalidLayerError(`hardlink ${JSON.stringify(name)} points to missing ${JSON.stringify(header.linkname)}`);
          if (st.isDirectory()) throw new InvalidLayerError(`hardlink ${JSON.stringify(name)} points to a directory`);
          fsSync.linkSync(sourceDir.path(sourceBase), target);
        } finally {
          sourceDir.close();
        }
        // The link shares its target's inode and metadata: no chmod/chown (it may be a symlink).
        this.markAdded(components2);
        return;
      }
      case 'character-device':
      case 'block-device': {
        const major = header.devmajor ?? 0;
        const minor = header.devminor ?? 0;
        if (major > MAX_MAJOR || minor > MAX_MINOR || major < 0 || minor < 0) {
          throw new InvalidLayerError(`device ${JSON.stringify(name)} has out-of-range number ${major}:${minor}`);
        }
        if (type === 'character-device' && major === 0 && minor === 0) {
          throw new InvalidLayerError(`device ${JSON.stringify(name)} is 0:0, which is reserved for overlay whiteouts`);
        }
        await this.clear(target, lstatOrNullSync(target));
        this.sys.mknod(target, (type === 'character-device' ? S_IFCHR : S_IFBLK) | mode, major, minor);
        break;
      }
      case 'fifo':
        await this.clear(target, lstatOrNullSync(target));
        this.sys.mknod(target, S_IFIFO | mode, 0, 0);
        break;
      default:
        throw new InvalidLayerError(`entry ${JSON.stringify(name)} has unsupported type ${String(type)}`);
    }
    this.markAdded(components2);
    if (this.chown) fsSync.lchownSync(target, header.uid ?? 0, header.gid ?? 0);
    // chown clears setuid/setgid, so the mode comes after it; symlinks have no mode of their own.
    if (type !== 'symlink') chmodNoFollow(target, mode);
    for (const [key, value] of xattrs) this.sys.lsetxattr(target, key, value);
    if (type === 'directory') this.dirTimes.push({ components: components2, mtime });
    else fsSync.lutimesSync(target, mtime, mtime);
  }

  /** Removes what is at `target` (its lstat `existing`; null: nothing) to make room for an entry. */
  private async clear(target: string, existing: fsSync.Stats | null): Promise<void> {
    if (!existing) return;
    this.forgetParents();
    // Through the pinned parent (target is /proc/self/fd/N/base), fd-relative at any depth.
    if (existing.isDirectory()) await removeTree(target);
    else fsSync.unlinkSync(target);
  }

  private markAdded(components: string[]): void {
    if (this.opts.whiteouts === 'merge') this.added.add(components.join('/'));
  }

  /** `.wh.NAME` (target set) or `.wh..wh..opq` (target null) inside `dirComponents`. */
  private async whiteout(dirComponents: string[], target: string | null, name: string): Promise<void> {
    this.forgetParents();
    const dir = await resolveInRoot(this.root, dirComponents, true);
    const dirSt = await lstatOrNull(dir.hostPath);
    // Whiteouts below something this layer made a non-directory hide nothing more (umoci writes
    // `x/.wh.y` next to a file `x` that replaced directory `x`).
    if (dirSt && !dirSt.isDirectory()) return;
    if (this.opts.whiteouts === 'overlay') {
      await ensureDirs(this.root, dir.components);
      if (target === null) {
        if (dir.components.length === 0) throw new InvalidLayerError(`opaque whiteout ${JSON.stringify(name)} at the root`);
        this.sys.lsetxattr(dir.hostPath, OVERLAY_OPAQUE_XATTR, Buffer.from('y'));
      } else {
        const hostPath = path.join(dir.hostPath, target);
        await removeTree(hostPath);
        this.sys.mknod(hostPath, S_IFCHR | 0o000, 0, 0);
      }
      return;
    }
    if (!dirSt) return; // whiteout for something that is not there: nothing to hide
    if (target !== null) {
      await removeTree(path.join(dir.hostPath, target));
    } else {
      await this.emptyExceptAdded(dir.hostPath, dir.components);
    }
  }

  /** Removes every entry below a directory that this layer did not itself add. */
  private async emptyExceptAdded(hostDir: string, components: string[]): Promise<void> {
    for (const child of await fs.readdir(hostDir, { withFileTypes: true })) {
      const childComponents = [...components, child.name];
      const key = childComponents.join('/');
      const childPath = path.join(hostDir, child.name);
      if (!this.added.has(key)) await removeTree(childPath);
      else if (child.isDirectory()) await this.emptyExceptAdded(childPath, childComponents);
    }
  }

  private xattrsOf(header: { pax?: Record<string, string> }, name: string): Array<[string, Buffer]> {
    const out: Array<[string, Buffer]> = [];
    for (const [key, value] of Object.entries(header.pax ?? {})) {
      if (!key.startsWith(PAX_XATTR)) continue;
      const attr = key.slice(PAX_XATTR.length);
      if (attr.startsWith('trusted.')) {
        throw new InvalidLayerError(`entry ${JSON.stringify(name)} carries a trusted.* xattr (${attr})`);
      }
      // tar-stream decodes PAX values as UTF-8, so only text-valued user.* attributes survive
      // intact; binary ones (security.capability, ACLs) are skipped rather than corrupted.
      if (attr.startsWith('user.')) out.push([attr, Buffer.from(value, 'utf8')]);
    }
    return out;
  }

  /** Directory mtimes last, deepest first, after their contents stopped changing. */
  async finish(): Promise<void> {
    this.dirTimes.sort((a, b) => b.components.length - a.components.length);
    for (const { components, mtime } of this.dirTimes) {
      // Only where the directory still is: a later entry may have replaced it or a parent.
      let dir: PinnedDir | null;
      try {
        dir = this.pinDir(components.slice(0, -1), false);
      } catch (err) {
        if (err instanceof InvalidLayerError) continue;
        throw err;
      }
      if (!dir) continue;
      try {
        const base = components[components.length - 1];
        if (lstatIn(dir, base)?.isDirectory()) fsSync.lutimesSync(dir.path(base), mtime, mtime);
      } finally {
        dir.close();
      }
    }
  }
}

const NEW_FILE = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW;
/** Small files are gathered and written in one call; large ones stream in 1 MiB writes. */
const SMALL_FILE = 1024 * 1024;

/** A file entry's body into `fd` (left open for its metadata). */
async function writeFileEntry(fd: number, body: Readable, size: number): Promise<void> {
  if (size > SMALL_FILE) {
    await pipeline(body, new Coalesce(), fsSync.createWriteStream('', { fd, autoClose: false }));
    return;
  }
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  const data = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
  for (let off = 0; off < data.length;) off += fsSync.writeSync(fd, data, off);
}

function lstatOrNullSync(p: string) {
  try {
    return fsSync.lstatSync(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return null;
    throw err;
  }
}

export async function lstatOrNull(p: string) {
  try {
    return await fs.lstat(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return null;
    throw err;
  }
}
