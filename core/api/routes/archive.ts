/**
 * `docker cp` both ways: HEAD/GET/PUT /containers/{id}/archive?path=...
 *
 * - HEAD stats a path; GET streams it as a tar whose entries start with the path's base name
 *   (archive-tar.ts); both carry `X-Docker-Container-Path-Stat` (base64 JSON
 *   {name,size,mode,mtime,linkTarget}, mode in Go's os.FileMode bits, which the docker CLI decodes).
 * - PUT extracts a tar into a directory of the container (archive-extract.ts).
 *
 * A running container changes its rootfs while we copy (CVE-2018-15664: a directory swapped for a
 * symlink to `/` mid-copy), so nothing resolves a host path string twice: paths are resolved by
 * the kernel inside the rootfs as the container itself would see them (archive-paths.ts), the
 * result is held by fd, and the walk below it goes directory fd by directory fd, never following
 * a name. Works for stopped containers too: the rootfs is mounted (counted) for the length of the
 * request.
 */
import type { ServerResponse } from 'node:http';
import { BerthError, ForbiddenError, InvalidArgumentError } from '../../contracts/errors';
import type { StorageDriver } from '../../contracts/storage';
import type { ContainerRecord } from '../../containers/record';
import type { Engine } from '../../kernel/engine';
import { pinRoot, type PinnedDir } from '../../sys/inroot';
import { type ApiRequest, type Router, boolParam } from '../router';
import { extractInto } from './archive-extract';
import { type ContainerPathStat, type Target, scopeOf, statPath } from './archive-paths';
import { tarTree } from './archive-tar';

export const PATH_STAT_HEADER = 'X-Docker-Container-Path-Stat';

export function archiveRoutes(router: Router, engine: Engine): void {
  router.add('GET', '/containers/{id}/archive', (req, res) => getArchive(engine, req, res));
  router.add('PUT', '/containers/{id}/archive', (req, res) => putArchive(engine, req, res));
}

function statHeader(stat: ContainerPathStat): string {
  return Buffer.from(JSON.stringify(stat)).toString('base64');
}

function requiredPath(req: ApiRequest): string {
  const p = req.query.get('path');
  if (!p) throw new InvalidArgumentError('the path query parameter is required (a path inside the container)');
  if (p.includes('\0')) throw new InvalidArgumentError('path contains a NUL byte');
  return p;
}

/**
 * Mount the container's rootfs for the duration of `fn` (counted mounts: works while it runs too),
 * pinned by fd: everything below it is opened relative to that fd.
 */
async function withRootfs<T>(engine: Engine, rec: ContainerRecord, fn: (rootfs: string, root: PinnedDir, release: () => void) => Promise<T>): Promise<T> {
  const storage: StorageDriver | undefined = engine.storage();
  if (!storage) throw new BerthError(`no storage driver: ${engine.plugins.whyMissing('storage')}`);
  const rootfs = await storage.mount(rec.Id);
  let released = false;
  let root: PinnedDir | undefined;
  const release = () => {
    if (released) return;
    released = true;
    root?.close();
    storage.unmount(rec.Id).catch((err) => engine.log.warn('unmount after archive failed', { container: rec.Id, error: (err as Error).message }));
  };
  try {
    root = pinRoot(rootfs);
    return await fn(rootfs, root, release);
  } catch (err) {
    release();
    throw err;
  }
}

function eventAttrs(rec: ContainerRecord): Record<string, string> {
  return { ...(rec.Config.Labels ?? {}), image: rec.Config.Image, name: rec.Name.replace(/^\//, '') };
}

async function getArchive(engine: Engine, req: ApiRequest, res: ServerResponse): Promise<void> {
  const rawPath = requiredPath(req);
  const rec = engine.containers.get(req.params.id);
  await withRootfs(engine, rec, async (rootfs, root, release) => {
    const scope = scopeOf(engine, rec, rootfs, root, rawPath);
    let stat: ContainerPathStat;
    let target: Target;
    try {
      ({ stat, target } = statPath(scope, rec, rawPath));
    } finally {
      scope.close(); // the target holds its own fd
    }
    if (req.method === 'HEAD') {
      target.dir.close();
      res.writeHead(200, { [PATH_STAT_HEADER]: statHeader(stat), 'Content-Type': 'application/x-tar' }).end();
      release();
      return;
    }
    const stream = tarTree(target, stat.name);
    res.writeHead(200, { [PATH_STAT_HEADER]: statHeader(stat), 'Content-Type': 'application/x-tar' });
    const done = () => {
      target.dir.close();
      release();
    };
    stream.once('close', done);
    stream.once('end', done);
    req.signal.addEventListener('abort', () => stream.destroy());
    stream.on('error', (err) => {
      engine.log.warn('archive stream failed', { container: rec.Id, path: rawPath, error: err.message });
      res.destroy();
      done();
    });
    stream.pipe(res);
    engine.events.publish('container', 'archive-path', rec.Id, eventAttrs(rec));
  });
}

async function putArchive(engine: Engine, req: ApiRequest, res: ServerResponse): Promise<void> {
  const rawPath = requiredPath(req);
  const rec = engine.containers.get(req.params.id);
  const noOverwriteDirNonDir = boolParam(req.query, 'noOverwriteDirNonDir');
  const copyUIDGID = boolParam(req.query, 'copyUIDGID');
  if (rec.HostConfig.ReadonlyRootfs) throw new ForbiddenError(`container ${rec.Name.replace(/^\//, '')}: its rootfs is marked read-only`);
  await withRootfs(engine, rec, async (rootfs, containerRoot, release) => {
    const scope = scopeOf(engine, rec, rootfs, containerRoot, rawPath);
    try {
      await extractInto(req, rec, scope, rootfs, { rawPath, noOverwriteDirNonDir, copyUIDGID });
    } finally {
      scope.close();
      release();
    }
    engine.events.publish('container', 'extract-to-dir', rec.Id, eventAttrs(rec));
    res.writeHead(200).end();
  });
}
