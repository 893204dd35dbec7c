/**
 * POST /build: Docker's classic (legacy) builder API, which `DOCKER_BUILDKIT=0 docker build`
 * speaks: the context as a (plain or gzip) tar body, options as query parameters, and the output
 * as JSON messages (`{"stream": "Step 1/3 : FROM busybox\n"}`, `{"aux": {"ID": "sha256:..."}}`,
 * errors as `{"errorDetail": {"message": ...}, "error": ...}`). Bad parameters, and failures before
 * any output (a bad Dockerfile, an unreadable context), get a plain HTTP error; once the build has
 * started, failures arrive in the stream, as dockerd sends them.
 */
import type { RegistryCredentials } from '../../contracts/registry';
import { InvalidArgumentError } from '../../contracts/errors';
import type { Engine } from '../../kernel/engine';
import { type BuildOptions, BuildError } from '../../build/builder';
import { lazyProgressStream } from '../../util/progress';
import { type Router, boolParam } from '../router';

function jsonParam<T>(q: URLSearchParams, name: string, check: (v: unknown) => v is T): T | undefined {
  const raw = q.get(name);
  if (!raw) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw new InvalidArgumentError(`${name}: invalid JSON: ${raw}`);
  }
  if (!check(v)) throw new InvalidArgumentError(`${name}: expected ${check === stringList ? 'a JSON array' : 'a JSON object'} of strings, got ${raw}`);
  return v;
}

const stringMap =
  (nullable: boolean) =>
  (v: unknown): v is Record<string, string> =>
    typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'string' || (nullable && x === null));

const stringList = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');

/** X-Registry-Config: base64 (url or std) JSON of host -> credentials, for pulling base images. */
function registryConfig(header: string | string[] | undefined): Record<string, RegistryCredentials> | undefined {
  if (typeof header !== 'string' || !header) return undefined;
  try {
    const json = JSON.parse(Buffer.from(header.replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString('utf8'));
    if (typeof json !== 'object' || json === null) return undefined;
    const out: Record<string, RegistryCredentials> = {};
    for (const [host, c] of Object.entries(json as Record<string, Record<string, string>>)) {
      const creds: RegistryCredentials = {
        username: c?.username || undefined,
        password: c?.password || undefined,
        identitytoken: c?.identitytoken || undefined,
        registrytoken: c?.registrytoken || undefined,
      };
      if (Object.values(creds).some(Boolean)) out[host] = creds;
    }
    return out;
  } catch {
    throw new InvalidArgumentError('X-Registry-Config header is not base64-encoded JSON');
  }
}

export function buildRoutes(router: Router, engine: Engine): void {
  router.add('POST', '/build', async (req, res) => {
    const q = req.query;
    if (q.get('remote')) throw new InvalidArgumentError(`remote=${q.get('remote')}: berth builds only from a context sent in the request body (no URLs, no git)`);
    const opts: BuildOptions = {
      dockerfile: q.get('dockerfile') || undefined,
      tags: q.getAll('t').filter(Boolean),
      buildArgs: jsonParam(q, 'buildargs', stringMap(true)),
      labels: jsonParam(q, 'labels', stringMap(false)),
      noCache: boolParam(q, 'nocache'),
      target: q.get('target') || undefined,
      rm: q.has('rm') ? boolParam(q, 'rm') : true,
      forceRm: boolParam(q, 'forcerm'),
      pull: boolParam(q, 'pull'),
      registryConfig: registryConfig(req.raw.headers['x-registry-config']),
      extraHosts: q
        .getAll('extrahosts')
        .flatMap((h) => h.split(','))
        .map((h) => h.trim())
        .filter(Boolean),
      cacheFrom: jsonParam(q, 'cachefrom', stringList),
      networkMode: q.get('networkmode') || undefined,
      signal: req.signal,
    };
    const quiet = boolParam(q, 'q');
    const out = lazyProgressStream(res);
    // Quiet: the output is held back and only shown when the build fails (docker build -q does so).
    const held: string[] = [];
    try {
      const result = await engine.builder.build(req.raw, opts, {
        stream: (text) => (quiet ? held.push(text) : out.raw({ stream: text })),
        raw: (msg) => {
          if (msg.aux) out.raw(msg);
          else if (!quiet) out.raw(msg);
        },
      });
      if (quiet) out.raw({ stream: `${result.id}\n` });
    } catch (err) {
      // A build that failed early leaves part of the context unread: take it, so the client's upload ends cleanly.
      req.raw.resume();
      if (quiet && held.length) out.raw({ stream: held.join('') });
      // Nothing sent yet (a bad Dockerfile, an unreadable context): an HTTP error, as dockerd
      // answers. A client still sending its context must not reuse this connection for another
      // request before the rest has arrived: it ends with the answer.
      if (!out.started()) {
        if (!req.raw.complete) res.setHeader('Connection', 'close');
        throw err;
      }
      const message = err instanceof Error ? err.message : String(err);
      const code = err instanceof BuildError && err.code !== undefined ? err.code : undefined;
      out.raw({ errorDetail: code === undefined ? { message } : { code, message }, error: message });
    }
    out.end();
  });
}
