/**
 * COPY and ADD sources: paths relative to the context root (or an image's rootfs for --from),
 * globs, `.dockerignore`; a path or symlink that leads out of the context is refused (also for the
 * Dockerfile and .dockerignore, read through resolveScoped). Also the
 * content hash of the sources (paths, types, modes, contents) the build cache keys on.
 */
import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { CopyError } from './errors';
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
    if (clean === '') {
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
