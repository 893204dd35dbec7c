import type { RegistryCredentials } from '../../contracts/registry';
import { InvalidArgumentError } from '../../contracts/errors';
import type { Engine } from '../../kernel/engine';
import { parsePlatform } from '../../images/manifest';
import { parseReference } from '../../images/reference';
import { progressStream } from '../../util/progress';
import { type ApiRequest, type Router, boolParam, filtersParam, sendJson } from '../router';

/** Docker's X-Registry-Auth: base64url JSON of {username, password, serveraddress, identitytoken, registrytoken}. */
export function registryAuth(req: ApiRequest): RegistryCredentials | undefined {
  const header = req.raw.headers['x-registry-auth'];
  if (typeof header !== 'string' || !header) return undefined;
  try {
    const json = JSON.parse(Buffer.from(header.replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString('utf8'));
    const creds: RegistryCredentials = {
      username: json.username || undefined,
      password: json.password || undefined,
      identitytoken: json.identitytoken || undefined,
      registrytoken: json.registrytoken || undefined,
    };
    return Object.values(creds).some(Boolean) ? creds : undefined;
  } catch {
    throw new InvalidArgumentError('X-Registry-Auth header is not base64url-encoded JSON');
  }
}

export function imageRoutes(router: Router, engine: Engine): void {
  const images = engine.images;

  // Pull: streamed progress; errors after the stream started are reported in-stream, as Docker does.
  router.add('POST', '/images/create', async (req, res) => {
    const fromImage = req.query.get('fromImage');
    if (!fromImage) throw new InvalidArgumentError('fromImage is required (import with fromSrc is not supported yet)');
    const tag = req.query.get('tag');
    const name = tag ? (tag.startsWith('sha256:') ? `${fromImage}@${tag}` : `${fromImage}:${tag}`) : fromImage;
    const platform = req.query.get('platform') ? parsePlatform(req.query.get('platform')!) : undefined;
    const credentials = registryAuth(req);
    // A malformed reference is the client's error (400), answered before the 200 of the stream.
    parseReference(name);
    // The stream starts with the first progress message: an error before it (no such image,
    // unauthorized) is a plain HTTP error with Docker's status code; later ones go in-stream.
    let out: ReturnType<typeof progressStream> | undefined;
    try {
      await images.pull(name, { platform, credentials, progress: (e) => (out ??= progressStream(res)).progress(e), signal: req.signal });
    } catch (err) {
      if (!out) throw err;
      out.error(err);
    }
    out?.end();
    if (!out) res.writeHead(200, { 'Content-Type': 'application/json' }).end();
  });

  router.add('GET', '/images/json', async (req, res) => {
    sendJson(res, 200, await images.list({ all: boolParam(req.query, 'all'), filters: filtersParam(req.query) }));
  });

  router.add('GET', '/images/{name*}/json', async (req, res) => sendJson(res, 200, await images.inspect(req.params.name)));
  router.add('GET', '/images/{name*}/history', async (req, res) => sendJson(res, 200, await images.history(req.params.name)));
  router.add('POST', '/images/{name*}/tag', async (req, res) => {
    await images.tag(req.params.name, req.query.get('repo') ?? '', req.query.get('tag') ?? undefined);
    res.writeHead(201).end();
  });
  router.add('DELETE', '/images/{name*}', async (req, res) =>
    sendJson(res, 200, await images.remove(req.params.name, { force: boolParam(req.query, 'force'), noPrune: boolParam(req.query, 'noprune') })),
  );
}
