/**
 * `berth cp` both ways, as docker cp does it over the archive routes: HEAD stats the container
 * path, GET brings it as a tar, PUT extracts a tar into a container directory. The names in the
 * tars are rebased the way docker's CopyTo does (a file or a directory copied to a new name, into
 * a directory, or its contents only with `SRC/.`); `-` means a tar on stdin or stdout.
 */
import { promises as fs, createReadStream, createWriteStream } from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar-stream';
import type { CommandContext } from '../main';
import { UsageError } from '../main';
import { parse } from '../args';
import { ApiError, type Client } from '../client';

const MODE_DIR = 2 ** 31;
const MODE_SYMLINK = 2 ** 27;

interface PathStat {
  name: string;
  size: number;
  mode: number;
  mtime: string;
  linkTarget: string;
}

/** docker's splitCpArg: `CONTAINER:PATH`, unless the argument is plainly a local path. */
function splitCpArg(arg: string): { container?: string; path: string } {
  if (arg.startsWith('/') || arg.startsWith('.') || arg === '-') return { path: arg };
  const i = arg.indexOf(':');
  if (i <= 0) return { path: arg };
  return { container: arg.slice(0, i), path: arg.slice(i + 1) };
}

async function statInContainer(client: Client, container: string, p: string): Promise<PathStat | undefined> {
  try {
    const res = await client.request(`/containers/${encodeURIComponent(container)}/archive`, { method: 'HEAD', query: { path: p } });
    res.resume();
    const header = res.headers['x-docker-container-path-stat'];
    return JSON.parse(Buffer.from(String(header), 'base64').toString('utf8')) as PathStat;
  } catch (e) {
    if (e instanceof ApiError && e.status === 404 && !/No such container/.test(e.message)) return undefined;
    throw e;
  }
}

/** The first path component of a tar entry swapped for `to` ('' drops it: the contents only). */
function rebase(name: string, from: string, to: string): string | undefined {
  const clean = from === '.' ? name : name.replace(/^\.\//, '');
  if (clean === from || clean === `${from}/`) return to;
  if (!clean.startsWith(`${from}/`)) return undefined;
  const rest = clean.slice(from.length + 1);
  return to ? `${to}/${rest}` : rest;
}

/** Where docker's CopyTo puts a source: `dir` to extract into and the name its top entry gets there. */
async function hostDestination(dest: string, srcIsDir: boolean, srcPath: string): Promise<{ dir: string; name: string }> {
  const st = await fs.stat(dest).catch(() => undefined);
  const srcName = path.posix.basename(srcPath);
  const contentsOnly = /\/\.$/.test(srcPath);
  if (st?.isDirectory()) return { dir: dest, name: contentsOnly ? '' : srcName };
  if (st && srcIsDir) throw new Error(`cannot copy a directory to a file: ${dest}`);
  if (!st && /\/$/.test(dest) && !srcIsDir) throw new Error(`destination directory ${dest} does not exist`);
  const parent = path.dirname(dest);
  if (!(await fs.stat(parent).catch(() => undefined))?.isDirectory()) throw new Error(`no such directory: ${parent}`);
  return { dir: parent, name: path.basename(dest) };
}

/** Refuse a name that climbs out of `root`, or goes through a symlink the archive made. */
async function safeTarget(root: string, name: string): Promise<string> {
  const parts = name.split('/').filter((p) => p && p !== '.');
  if (parts.includes('..')) throw new Error(`archive entry ${JSON.stringify(name)} points outside ${root}`);
  let cur = root;
  for (const part of parts.slice(0, -1)) {
    cur = path.join(cur, part);
    if ((await fs.lstat(cur).catch(() => undefined))?.isSymbolicLink()) throw new Error(`archive entry ${JSON.stringify(name)} goes through the symlink ${cur}`);
  }
  return path.join(root, ...parts);
}

/** Unpack a tar from the daemon below `dir`, top entry renamed; owners are left as the host gives them (docker's NoLchown). */
async function extract(stream: NodeJS.ReadableStream, dir: string, from: string, to: string): Promise<void> {
  const ex = tar.extract();
  const dirTimes: [string, Date][] = [];
  ex.on('entry', (header, body, next) => {
    void (async () => {
      const name = rebase(header.name, from, to);
      const target = name === undefined ? undefined : name === '' ? dir : await safeTarget(dir, name);
      const mode = (header.mode ?? 0o644) & 0o7777;
      if (!target) body.resume();
      else if (header.type === 'directory') {
        body.resume();
        await fs.mkdir(target, { recursive: true });
        if (target !== dir) await fs.chmod(target, mode);
        dirTimes.push([target, header.mtime ?? new Date()]);
      } else if (header.type === 'symlink') {
        body.resume();
        await fs.rm(target, { force: true });
        await fs.symlink(header.linkname ?? '', target);
      } else if (header.type === 'link') {
        body.resume();
        const linked = rebase(header.linkname ?? '', from, to);
        if (linked === undefined) throw new Error(`archive hardlink ${header.name} points outside the copy`);
        await fs.rm(target, { force: true });
        await fs.link(await safeTarget(dir, linked), target);
      } else if (header.type === 'file' || header.type === 'contiguous-file') {
        await fs.rm(target, { force: true, recursive: false }).catch(() => undefined);
        await pipeline(body, createWriteStream(target, { mode }));
        await fs.chmod(target, mode);
        if (header.mtime) await fs.utimes(target, header.mtime, header.mtime);
      } else body.resume();
    })().then(
      () => next(),
      (err) => ex.destroy(err),
    );
  });
  await pipeline(stream, ex);
  for (const [d, t] of dirTimes.reverse()) await fs.utimes(d, t, t).catch(() => undefined);
}

/** Tar a host path (names starting with `name`, or its contents when `name` is ''), not following links below it. */
function packHost(src: string, name: string, followTop: boolean): tar.Pack {
  const pack = tar.pack();
  const add = async (p: string, entryName: string, follow: boolean): Promise<void> => {
    const st = follow ? await fs.stat(p) : await fs.lstat(p);
    const header = { name: entryName, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: st.mtime };
    if (st.isDirectory()) {
      if (entryName) await new Promise<void>((r, j) => pack.entry({ ...header, type: 'directory' }, (e) => (e ? j(e) : r())));
      for (const child of (await fs.readdir(p)).sort()) await add(path.join(p, child), entryName ? `${entryName}/${child}` : child, false);
    } else if (st.isSymbolicLink()) {
      const linkname = await fs.readlink(p);
      await new Promise<void>((r, j) => pack.entry({ ...header, type: 'symlink', linkname }, (e) => (e ? j(e) : r())));
    } else if (st.isFile()) {
      const sink = pack.entry({ ...header, type: 'file', size: st.size });
      await pipeline(createReadStream(p), sink);
    }
  };
  void (async () => {
    try {
      await add(src, name, followTop);
      pack.finalize();
    } catch (err) {
      pack.destroy(err as Error);
    }
  })();
  return pack;
}

export async function cp({ client, argv, out }: CommandContext): Promise<number> {
  const usage = 'berth cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-  or  berth cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH';
  const { values, positionals } = parse(
    argv,
    {
      archive: { type: 'boolean', short: 'a', help: 'Archive mode (copy all uid/gid information)' },
      'follow-link': { type: 'boolean', short: 'L', help: 'Always follow symbol link in SRC_PATH' },
      quiet: { type: 'boolean', short: 'q', help: 'Suppress progress output during copy' },
    },
    usage,
    { min: 2, max: 2 },
  );
  const src = splitCpArg(positionals[0]);
  const dst = splitCpArg(positionals[1]);
  if (src.container && dst.container) throw new UsageError('copying between containers is not supported');
  if (!src.container && !dst.container) throw new UsageError('must specify at least one container source');
  if (src.container) {
    let srcPath = src.path;
    let stat = await statInContainer(client, src.container, srcPath);
    if (!stat) throw new Error(`No such container:path: ${src.container}:${src.path}`);
    if (values['follow-link'] && stat.mode & MODE_SYMLINK && stat.linkTarget) {
      // The link's target is copied under the link's own name.
      srcPath = stat.linkTarget;
      stat = (await statInContainer(client, src.container, srcPath)) ?? stat;
    }
    // The daemon names the entries after the path's base name (its stat's name).
    const from = stat.name;
    const res = await client.request(`/containers/${encodeURIComponent(src.container)}/archive`, { query: { path: srcPath } });
    if (dst.path === '-') {
      await pipeline(res, out);
      return 0;
    }
    const { dir, name } = await hostDestination(dst.path, !!(stat.mode & MODE_DIR), src.path);
    await extract(res, dir, from, name);
    return 0;
  }
  const container = dst.container!;
  const query = { path: dst.path, noOverwriteDirNonDir: true, copyUIDGID: values.archive || undefined };
  const dest = await statInContainer(client, container, dst.path);
  if (src.path === '-') {
    // A tar of one's own goes into a directory that is there already (docker's rule).
    if (!dest) throw new Error(`No such container:path: ${container}:${dst.path}`);
    if (!(dest.mode & MODE_DIR)) throw new Error(`destination "${container}:${dst.path}" must be a directory`);
    await client
      .request(`/containers/${encodeURIComponent(container)}/archive`, { method: 'PUT', query, body: process.stdin, headers: { 'Content-Type': 'application/x-tar' } })
      .then((r) => r.resume());
    return 0;
  }
  const hostSrc = src.path.replace(/\/\.$/, '');
  const st = await (values['follow-link'] ? fs.stat(hostSrc) : fs.lstat(hostSrc)).catch(() => undefined);
  if (!st) throw new Error(`lstat ${path.resolve(hostSrc)}: no such file or directory`);
  let putDir = dst.path;
  let name = /\/\.$/.test(src.path) && st.isDirectory() ? '' : path.basename(hostSrc);
  if (!dest || !(dest.mode & MODE_DIR)) {
    if (dest && st.isDirectory()) throw new Error(`cannot copy a directory to a file: ${container}:${dst.path}`);
    if (!dest && /\/$/.test(dst.path)) throw new Error(`destination ${container}:${dst.path} does not exist`);
    putDir = path.posix.dirname(dst.path.replace(/\/+$/, '')) || '/';
    name = path.posix.basename(dst.path);
  }
  const res = await client.request(`/containers/${encodeURIComponent(container)}/archive`, {
    method: 'PUT',
    query: { ...query, path: putDir },
    body: packHost(hostSrc, name, !!values['follow-link']),
    headers: { 'Content-Type': 'application/x-tar' },
  });
  res.resume();
  return 0;
}
