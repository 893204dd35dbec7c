/**
 * The build context and the file side of COPY and ADD:
 * - unpacking the context tar the client sent (hostile input: every entry lands inside the
 *   context directory, `..` is refused, symlinks are created but never followed out);
 * - resolving COPY sources: paths relative to the context root, globs, `.dockerignore`; a path or
 *   symlink that leads out of the context is refused;
 * - the content hash of the sources (paths, types, modes, contents) for the build cache;
 * - writing the sources into a mounted rootfs, every destination resolved inside the rootfs
 *   (core/layers/resolve.ts) so a symlink in the image cannot send a file out of it.
 */
import { createHash } from 'node:crypto';
import { createReadStream, promises as fs, constants as fsc } from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar-stream';
import { InvalidArgumentError } from '../contracts/errors';
import { entryComponents } from '../layers/names';
import { resolveInRoot } from '../layers/resolve';
import type { IgnoreMatcher } from './ignore';

export type ItemType = 'file' | 'dir' | 'symlink';

/** One thing to copy: `rel` is its path below the source ('' for the source itself). */
export interface CopyItem {
  rel: string;
  host: string;
  type: ItemType;
  mode: number;
  size: number;
  mtime: Date;
  link?: string;
}

/** One COPY source after resolution: a file, a directory (its contents are copied) or a symlink. */
export interface CopySource {
  /** The name written to a directory destination (the source's base name). */
  name: string;
  /** The path as the Dockerfile named it (or as a glob matched it), for messages. */
  shown: string;
  isDir: boolean;
  items: CopyItem[];
}

/** Where sources come from: the build context (escapes refused) or an image's rootfs (--from). */
export interface SourceTree {
  root: string;
  /** Applied to paths relative to `root` (the context only). */
  ignore?: IgnoreMatcher;
  /** True for the context: a path or symlink leading out of the root is an error, not clamped. */
  confined: boolean;
  /** `build context`, `stage builder`, `image busybox` */
  what: string;
}

const GLOB = /[*?[]/;

/** A build error in Docker's words (`COPY failed: ...`): the client's fault, HTTP 400 in-stream. */
export class CopyError extends InvalidArgumentError {}

/**
 * Resolve `rel` under `root`, following symlinks (also the final one) the way a chroot would.
 * A confined tree refuses anything that would climb above the root; otherwise `..` stops at the
 * root and absolute targets restart there. Returns the host path, or undefined when missing.
 */
export async function resolveScoped(root: string, rel: string, confined: boolean, shown: string): Promise<string | undefined> {
  const outside = () => new CopyError(`forbidden path outside the build context: ${shown}`);
  const pending = rel.split('/');
  const resolved: string[] = [];
  let hops = 0;
  while (pending.length) {
    const part = pending.shift()!;
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (!resolved.length && confined) throw outside();
      resolved.pop();
      continue;
    }
    const host = path.join(root, ...resolved, part);
    let st;
    try {
      st = await fs.lstat(host);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
      throw err;
    }
    if (st.isSymbolicLink()) {
      if (++hops > 255) throw new CopyError(`too many symlinks resolving ${shown}`);
      const target = await fs.readlink(host);
      if (target.startsWith('/')) {
        if (confined) throw new CopyError(`forbidden path outside the build context: ${shown} (a symlink to ${target})`);
        resolved.length = 0;
      }
      // `..` in the target counts from the link's directory: check it against the root as we go.
      pending.unshift(...target.split('/'));
      continue;
    }
    if (pending.some((p) => p && p !== '.') && !st.isDirectory()) return undefined;
    resolved.push(part);
  }
  return path.join(root, ...resolved);
}

/** Dockerfile and .dockerignore are small; a larger one is refused rather than read into memory. */
const MAX_CONTEXT_FILE = 16 * 1024 * 1024;

/**
 * Reads a file of the build context by its context path (the Dockerfile, .dockerignore), resolved
 * the way Docker scopes them: symlinks are followed inside the context only (an absolute target
 * restarts at the context root). Only a regular file is read: it is opened O_NOFOLLOW|O_NONBLOCK
 * and checked with fstat, so a FIFO or device never blocks or streams forever. Returns undefined
 * when there is no such file; throws a CopyError naming it when it is not a regular file.
 */
export async function readContextFile(root: string, rel: string, shown: string): Promise<string | undefined> {
  const host = await resolveScoped(root, rel, false, shown);
  if (!host) return undefined;
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(host, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    if (code === 'ELOOP') throw new CopyError(`${shown}: not a regular file (a symlink)`);
    throw err;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new CopyError(`${shown} in the build context is not a regular file`);
    if (st.size > MAX_CONTEXT_FILE) throw new CopyError(`${shown} is larger than ${MAX_CONTEXT_FILE} bytes`);
    return await fh.readFile('utf8');
  } finally {
    await fh.close();
  }
}

async function itemOf(host: string, rel: string): Promise<CopyItem> {
  const st = await fs.lstat(host);
  const base = { rel, host, mode: st.mode & 0o7777, size: 0, mtime: st.mtime };
  if (st.isDirectory()) return { ...base, type: 'dir' };
  if (st.isSymbolicLink()) return { ...base, type: 'symlink', link: await fs.readlink(host) };
  if (st.isFile()) return { ...base, type: 'file', size: st.size };
  throw new CopyError(`${rel || host}: only regular files, directories and symlinks can be copied`);
}

/** Every entry below a directory, parents first, names sorted; ignored paths (context-relative) left out. */
async function walk(tree: SourceTree, dirHost: string, dirRel: string, contextRel: string | undefined, out: CopyItem[]): Promise<void> {
  const names = (await fs.readdir(dirHost)).sort();
  for (const name of names) {
    const rel = dirRel ? `${dirRel}/${name}` : name;
    const ctxRel = contextRel === undefined ? undefined : contextRel ? `${contextRel}/${name}` : name;
    const host = path.join(dirHost, name);
    const ignored = !!(tree.ignore && ctxRel !== undefined && tree.ignore.ignores(ctxRel));
    const st = await fs.lstat(host);
    if (ignored && !(st.isDirectory() && tree.ignore!.mayReincludeBelow(ctxRel!))) continue;
    if (!ignored) out.push(await itemOf(host, rel));
    if (st.isDirectory()) await walk(tree, host, rel, ctxRel, out);
  }
}

/** A glob pattern as an anchored regex over `/`-separated paths (Go's filepath.Match). */
function globRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        let cls = pattern.slice(i + 1, end);
        if (cls.startsWith('^') || cls.startsWith('!')) cls = '^' + cls.slice(1);
        re += `[${cls.replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else if (c === '\\' && i + 1 < pattern.length) re += '\\' + pattern[++i];
    else re += /[.+^${}()|\]\\/]/.test(c) ? `\\${c}` : c;
  }
  return new RegExp(`^${re}$`);
}

/** Clean a source path: relative to the tree's root, `..` above it refused for the context. */
function cleanSource(src: string, tree: SourceTree): string {
  const norm = path.posix.normalize('/' + src.replace(/^\/+/, ''));
  const lexical = path.posix.normalize(src.replace(/^\/+/, '') || '.');
  if (tree.confined && (lexical === '..' || lexical.startsWith('../'))) throw new CopyError(`forbidden path outside the build context: ${src}`);
  return norm.slice(1);
}

/**
 * Resolve the sources of one COPY/ADD. `instruction` (COPY or ADD) prefixes the messages the way
 * Docker's do.
 */
export async function resolveSources(tree: SourceTree, sources: string[], instruction: string): Promise<CopySource[]> {
  const out: CopySource[] = [];
  for (const src of sources) {
    const clean = cleanSource(src, tree);
    if (GLOB.test(clean)) {
      const parts = clean.split('/');
      const literal: string[] = [];
      while (parts.length && !GLOB.test(parts[0])) literal.push(parts.shift()!);
      const re = globRegExp(clean);
      const baseHost = literal.length ? await resolveScoped(tree.root, literal.join('/'), tree.confined, src) : tree.root;
      if (!baseHost) continue;
      const candidates: CopyItem[] = [];
      try {
        await walk({ ...tree, ignore: undefined }, baseHost, literal.join('/'), undefined, candidates);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOTDIR') throw err;
      }
      for (const c of candidates) {
        if (!re.test(c.rel) || tree.ignore?.ignores(c.rel)) continue;
        out.push(await sourceAt(tree, c.rel, src, instruction));
      }
      continue;
    }
    if (clean === '' ) {
      out.push(await sourceAt(tree, '', src, instruction));
      continue;
    }
    if (tree.ignore?.ignores(clean)) throw notFound(instruction, src, tree);
    out.push(await sourceAt(tree, clean, src, instruction));
  }
  if (!out.length) throw new CopyError(`${instruction} failed: no source files were specified (${sources.map((s) => JSON.stringify(s)).join(', ')} matched nothing in the ${tree.what})`);
  return out;
}

function notFound(instruction: string, src: string, tree: SourceTree): CopyError {
  return tree.ignore
    ? new CopyError(`${instruction} failed: file not found in build context or excluded by .dockerignore: stat ${src}: file does not exist`)
    : new CopyError(`${instruction} failed: ${src} not found in the ${tree.what}`);
}

async function sourceAt(tree: SourceTree, rel: string, shown: string, instruction: string): Promise<CopySource> {
  const host = rel ? await resolveScoped(tree.root, rel, tree.confined, shown) : tree.root;
  if (!host) throw notFound(instruction, shown, tree);
  const top = await fs.stat(host).catch(() => undefined);
  if (!top) throw notFound(instruction, shown, tree);
  const name = path.posix.basename(rel) || path.basename(tree.root);
  if (top.isDirectory()) {
    const items: CopyItem[] = [];
    // Ignore patterns are matched against context paths: those of the resolved directory.
    const ctxRel = tree.ignore ? path.relative(tree.root, host).split(path.sep).join('/') : undefined;
    await walk(tree, host, '', ctxRel, items);
    return { name, shown, isDir: true, items };
  }
  if (!top.isFile()) throw new CopyError(`${instruction} failed: ${shown} is not a regular file or directory`);
  return { name, shown, isDir: false, items: [await itemOf(host, '')] };
}

/** sha256 over every source's paths, types, modes and contents (not times, not owners). */
export async function hashSources(sources: CopySource[]): Promise<string> {
  const h = createHash('sha256');
  for (const s of sources) {
    h.update(`source ${s.name} ${s.isDir ? 'dir' : 'file'}\n`);
    for (const item of s.items) {
      h.update(`${item.rel}\0${item.type}\0${item.mode.toString(8)}\0${item.link ?? ''}\0${item.size}\n`);
      if (item.type === 'file') {
        const fileHash = createHash('sha256');
        await pipeline(createReadStream(item.host), fileHash);
        h.update(fileHash.digest());
      }
    }
  }
  return 'sha256:' + h.digest('hex');
}

// ---- writing into a rootfs ---------------------------------------------------------------------

export interface Owner {
  uid: number;
  gid: number;
}

/**
 * mkdir -p of `components` inside `rootfs`, resolving every existing parent inside the root;
 * returns the resolved components. New directories are 0755 and owned by `owner`.
 */
export async function mkdirInRoot(rootfs: string, components: string[], owner: Owner): Promise<string[]> {
  const { components: resolved } = await resolveInRoot(rootfs, components, true);
  let current = rootfs;
  for (const part of resolved) {
    current = path.join(current, part);
    try {
      await fs.mkdir(current, 0o755);
      await fs.lchown(current, owner.uid, owner.gid);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const st = await fs.lstat(current);
      if (!st.isDirectory()) throw new CopyError(`cannot create directory /${resolved.join('/')}: /${path.relative(rootfs, current)} exists and is not a directory`);
    }
  }
  return resolved;
}

/** Whether a path inside the rootfs exists and is a directory (symlinks followed inside the root). */
export async function isDirInRoot(rootfs: string, components: string[]): Promise<boolean> {
  const { hostPath } = await resolveInRoot(rootfs, components, true);
  const st = await fs.stat(hostPath).catch(() => undefined);
  return !!st?.isDirectory();
}

export interface WriteOptions {
  owner?: Owner;
  /** --chmod: octal mode for every copied file and directory. */
  mode?: number;
}

/** Write one item at `destComponents` inside the rootfs (resolved again there, never followed out). */
export async function writeItem(rootfs: string, destComponents: string[], item: CopyItem, opts: WriteOptions): Promise<void> {
  const owner = opts.owner ?? { uid: 0, gid: 0 };
  const parent = await mkdirInRoot(rootfs, destComponents.slice(0, -1), owner);
  const target = path.join(rootfs, ...parent, destComponents[destComponents.length - 1]);
  const existing = await fs.lstat(target).catch(() => undefined);
  const mode = opts.mode ?? item.mode;
  if (item.type === 'dir') {
    if (existing?.isDirectory()) {
      if (opts.owner) await fs.lchown(target, owner.uid, owner.gid);
      return;
    }
    if (existing) await fs.rm(target, { force: true });
    await fs.mkdir(target, mode);
    await fs.chmod(target, mode);
    await fs.lchown(target, owner.uid, owner.gid);
    return;
  }
  if (existing?.isDirectory()) throw new CopyError(`cannot overwrite directory /${[...parent, path.basename(target)].join('/')} with a ${item.type === 'file' ? 'file' : 'symlink'}`);
  if (existing) await fs.unlink(target);
  if (item.type === 'symlink') {
    await fs.symlink(item.link!, target);
    await fs.lchown(target, owner.uid, owner.gid);
    return;
  }
  await fs.copyFile(item.host, target, fsc.COPYFILE_EXCL);
  await fs.chmod(target, mode);
  await fs.lchown(target, owner.uid, owner.gid);
  await fs.utimes(target, item.mtime, item.mtime);
}

// ---- tar archives: the context, and ADD of a local archive --------------------------------------

export interface ExtractOptions {
  /** Apply the entries' uid/gid (ADD keeps an archive's owners; the context does not need them). */
  chown: boolean;
  /** Names for messages: `the build context`, `archive app.tar`. */
  what: string;
}

/**
 * Extract a tar stream below `baseComponents` of `root`. Every entry is resolved inside `root`
 * (parents through symlinks only inside it), `..` escaping the base is refused, hardlink targets
 * must resolve inside the root too; devices and fifos are skipped.
 */
export async function extractTar(stream: Readable, root: string, baseComponents: string[], opts: ExtractOptions): Promise<number> {
  const extract = tar.extract();
  let count = 0;
  const done = (async () => {
    for await (const entry of extract) {
      const h = entry.header;
      try {
        let comps: string[];
        try {
          comps = entryComponents(h.name);
        } catch {
          throw new CopyError(`${opts.what}: entry ${JSON.stringify(h.name)} leads outside the extraction directory`);
        }
        if (!comps.length) {
          entry.resume();
          continue;
        }
        const full = [...baseComponents, ...comps];
        const parent = await mkdirInRoot(root, full.slice(0, -1), { uid: 0, gid: 0 });
        const target = path.join(root, ...parent, full[full.length - 1]);
        const existing = await fs.lstat(target).catch(() => undefined);
        const mode = (h.mode ?? 0o644) & 0o7777;
        if (h.type === 'directory') {
          if (!existing?.isDirectory()) {
            if (existing) await fs.rm(target, { force: true });
            await fs.mkdir(target, mode);
          }
          await fs.chmod(target, mode);
        } else {
          if (existing?.isDirectory()) await fs.rm(target, { recursive: true, force: true });
          else if (existing) await fs.unlink(target);
          if (h.type === 'file' || h.type === 'contiguous-file') {
            const fh = await fs.open(target, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, mode);
            try {
              for await (const chunk of entry) await fh.write(chunk as Buffer);
            } finally {
              await fh.close();
            }
            await fs.chmod(target, mode);
          } else if (h.type === 'symlink') {
            await fs.symlink(h.linkname ?? '', target);
          } else if (h.type === 'link') {
            let linkComps: string[];
            try {
              linkComps = entryComponents(h.linkname ?? '');
            } catch {
              throw new CopyError(`${opts.what}: hardlink ${h.name} points outside the extraction directory`);
            }
            const src = await resolveInRoot(root, [...baseComponents, ...linkComps], false);
            const st = await fs.lstat(src.hostPath).catch(() => undefined);
            if (!st?.isFile()) throw new CopyError(`${opts.what}: hardlink ${h.name} -> ${h.linkname}: target is not a file in the archive`);
            await fs.link(src.hostPath, target);
          } else {
            entry.resume();
            continue;
          }
        }
        if (opts.chown) await fs.lchown(target, h.uid ?? 0, h.gid ?? 0);
        if (h.type !== 'symlink' && h.mtime) await fs.lutimes(target, h.mtime, h.mtime).catch(() => undefined);
        count++;
      } finally {
        entry.resume();
      }
    }
  })();
  stream.on('error', (err) => extract.destroy(err));
  stream.pipe(extract);
  await done;
  return count;
}

/** Whether a file is a tar archive (plain or gzip-compressed), by its first bytes. */
export async function archiveKind(file: string): Promise<'tar' | 'gzip' | undefined> {
  const fh = await fs.open(file, 'r');
  try {
    const buf = Buffer.alloc(512);
    const { bytesRead } = await fh.read(buf, 0, 512, 0);
    if (bytesRead >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) return 'gzip';
    if (bytesRead >= 262 && buf.subarray(257, 262).toString('latin1') === 'ustar') return 'tar';
    return undefined;
  } finally {
    await fh.close();
  }
}
