/**
 * Making images: commit, push, save (get), load, and import (POST /images/create?fromSrc=-).
 * Shapes follow the Docker Engine API, so the docker CLI drives them unchanged.
 */
import type { ServerResponse } from 'node:http';
import type { ContainerConfig } from '../../contracts/types';
import { InvalidArgumentError } from '../../contracts/errors';
import type { Engine } from '../../kernel/engine';
import { lazyProgressStream, progressStream } from '../../util/progress';
import { type ApiRequest, Router, boolParam, readJsonBody, sendJson } from '../router';
import { imageRoutes, registryAuth } from './images';
import { COMMIT_CONFIG, checkBody } from '../validate';

/** Docker sends `changes` as repeated query parameters; one may also hold several lines. */
function changesParam(q: URLSearchParams): string[] {
  return q
    .getAll('changes')
    .flatMap((c) => c.split('\n'))
    .filter((c) => c.trim());
}

export function imageBuildRoutes(router: Router, engine: Engine): void {
  // POST /images/create is shared with pull: this router is registered first, takes fromSrc
  // (import) and hands everything else to the pull handler of images.ts.
  const pullRouter = new Router();
  imageRoutes(pullRouter, engine);

  router.add('POST', '/images/create', async (req, res) => {
    const fromSrc = req.query.get('fromSrc');
    if (fromSrc === null) {
      const pull = pullRouter.match('POST', '/images/create');
      if (!pull || pull === 'method') throw new InvalidArgumentError('fromImage or fromSrc is required');
      return pull.handler(req, res);
    }
    if (fromSrc !== '-') throw new InvalidArgumentError(`fromSrc=${fromSrc}: berth imports only from the request body (fromSrc=-), never from a URL`);
    const rec = await engine.importer.import(req.raw, {
      repo: req.query.get('repo') ?? undefined,
      tag: req.query.get('tag') ?? undefined,
      changes: changesParam(req.query),
      message: req.query.get('message') ?? undefined,
      source: fromSrc,
    });
    const out = progressStream(res);
    out.raw({ status: rec.id });
    out.end();
  });

  router.add('POST', '/commit', async (req, res) => {
    const container = req.query.get('container');
    if (!container) throw new InvalidArgumentError('container is required: POST /commit?container=NAME_OR_ID');
    const body = checkBody<ContainerConfig>(await readJsonBody(req), COMMIT_CONFIG, 'commit config');
    const rec = await engine.committer.commit({
      container,
      repo: req.query.get('repo') ?? undefined,
      tag: req.query.get('tag') ?? undefined,
      comment: req.query.get('comment') ?? undefined,
      author: req.query.get('author') ?? undefined,
      // Accepted but ignored: pausing needs the cgroups freezer, which berth has not got yet.
      pause: req.query.has('pause') ? boolParam(req.query, 'pause') : true,
      changes: changesParam(req.query),
      config: body ?? undefined,
    });
    sendJson(res, 201, { Id: rec.id });
  });

  router.add('POST', '/images/{name*}/push', async (req, res) => {
    const out = lazyProgressStream(res);
    try {
      const pushed = await engine.pusher.push(req.params.name, {
        tag: req.query.get('tag') || undefined,
        credentials: registryAuth(req),
        progress: out.progress,
        signal: req.signal,
      });
      for (const p of pushed) out.raw({ progressDetail: {}, aux: { Tag: p.tag, Digest: p.digest, Size: p.size } });
    } catch (err) {
      if (!out.started()) throw err;
      out.error(err);
    }
    out.end();
  });

  const save = async (req: ApiRequest, res: ServerResponse, names: string[]) => {
    const stream = await engine.archiver.save(names);
    res.writeHead(200, { 'Content-Type': 'application/x-tar' });
    stream.on('error', () => res.destroy());
    req.signal.addEventListener('abort', () => stream.destroy());
    stream.pipe(res);
  };
  router.add('GET', '/images/get', (req, res) =>
    save(
      req,
      res,
      req.query
        .getAll('names')
        .flatMap((n) => n.split(','))
        .filter(Boolean),
    ),
  );
  router.add('GET', '/images/{name*}/get', (req, res) => save(req, res, [req.params.name]));

  // As dockerd: 200 at once, and a bad archive is an error in the stream (docker-py raises ImageLoadError).
  router.add('POST', '/images/load', async (req, res) => {
    const out = progressStream(res);
    try {
      for (const image of await engine.archiver.load(req.raw)) {
        if (image.tags.length) for (const t of image.tags) out.raw({ stream: `Loaded image: ${t}\n` });
        else out.raw({ stream: `Loaded image ID: ${image.id}\n` });
      }
    } catch (err) {
      req.raw.resume(); // the rest of the upload, so the client's request ends cleanly
      out.error(err);
    }
    out.end();
  });
}
