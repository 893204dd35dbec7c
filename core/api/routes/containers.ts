/**
 * Container routes in the Docker Engine API's shape, including the hijacked attach stream:
 * `Upgrade: tcp` -> 101, then raw bytes (TTY) or 8-byte-header frames (no TTY) out, stdin in.
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { connectUnix } from '../../util/unix-socket';
import { BerthError, ConflictError, InvalidArgumentError, NotImplementedError } from '../../contracts/errors';
import type { Engine } from '../../kernel/engine';
import type { CreateRequest, WaitCondition } from '../../containers/manager';
import { muxFrame, readLogs } from '../../containers/logs';
import { containerFilter } from '../../containers/filters';
import { monitorReady, resizeFrame } from '../../launcher/attach';
import { DEFAULT_DETACH_KEYS, parseDetachKeys } from '../detach-keys';
import { headersRead, hijack, relayMonitor } from '../hijack';
import { CREATE_BODY, checkBody, checkSecurityOpt } from '../validate';
import { type ApiRequest, type Router, boolParam, filtersParam, intParam, readJsonBody, sendJson, timestampParam } from '../router';

export function containerRoutes(router: Router, engine: Engine): void {
  const containers = engine.containers;

  router.add('POST', '/containers/create', async (req, res) => {
    const body = checkBody<CreateRequest>(await readJsonBody(req), CREATE_BODY, 'container config');
    checkSecurityOpt(body?.HostConfig?.SecurityOpt);
    sendJson(res, 201, await containers.create(body as CreateRequest, req.query.get('name') ?? undefined));
  });

  router.add('GET', '/containers/json', (req, res) => {
    const filter = containerFilter(filtersParam(req.query), {
      container: (ref) => containers.get(ref),
      imageAndDescendants: (ref) => engine.images.imageAndDescendants(ref),
    });
    const all = boolParam(req.query, 'all') || filter.impliesAll;
    const recs = containers.list().filter((c) => all || c.State.Running);
    const summaries = containers.summaries(recs);
    const list = recs
      .map((rec, i) => ({ rec, summary: summaries[i] }))
      .filter(({ rec, summary }) => filter.match({ rec, networks: summary.NetworkSettings.Networks, mounts: summary.Mounts, ports: summary.Ports }));
    const created = new Map(list.map(({ rec }) => [rec, Date.parse(rec.Created)]));
    list.sort((a, b) => created.get(b.rec)! - created.get(a.rec)!);
    const limit = intParam(req.query, 'limit') ?? -1;
    sendJson(
      res,
      200,
      (limit > 0 ? list.slice(0, limit) : list).map((c) => c.summary),
    );
  });

  router.add('GET', '/containers/{id}/json', (req, res) => sendJson(res, 200, containers.inspect(req.params.id)));

  router.add('POST', '/containers/{id}/start', async (req, res) => {
    const before = containers.get(req.params.id).State.Running;
    await containers.start(req.params.id);
    res.writeHead(before ? 304 : 204).end();
  });

  router.add('POST', '/containers/{id}/stop', async (req, res) => {
    const t = intParam(req.query, 't') ?? intParam(req.query, 'timeout');
    const stopped = await containers.stop(req.params.id, t, req.query.get('signal') ?? undefined);
    res.writeHead(stopped ? 204 : 304).end();
  });

  router.add('POST', '/containers/{id}/restart', async (req, res) => {
    await containers.restart(req.params.id, intParam(req.query, 't'));
    res.writeHead(204).end();
  });

  router.add('POST', '/containers/{id}/kill', async (req, res) => {
    await containers.kill(req.params.id, req.query.get('signal') || 'SIGKILL');
    res.writeHead(204).end();
  });

  router.add('POST', '/containers/{id}/wait', async (req, res) => {
    const condition = (req.query.get('condition') || 'not-running') as WaitCondition;
    if (!['not-running', 'next-exit', 'removed'].includes(condition)) throw new InvalidArgumentError(`invalid condition: "${condition}"`);
    containers.get(req.params.id); // a missing container is a 404, before the 200 goes out
    const waiting = containers.waitFor(req.params.id, condition, req.signal);
    // Headers go out at once so clients know the wait is registered (docker run relies on it).
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.flushHeaders();
    try {
      res.end(JSON.stringify(await waiting));
    } catch (err) {
      res.end(JSON.stringify({ StatusCode: -1, Error: { Message: (err as Error).message } }));
    }
  });

  router.add('DELETE', '/containers/{id}', async (req, res) => {
    // A link's name is /container/alias: clients send that slash escaped or not (the next route).
    if (boolParam(req.query, 'link')) await containers.removeLink(req.params.id);
    else await containers.remove(req.params.id, { force: boolParam(req.query, 'force'), volumes: boolParam(req.query, 'v') });
    res.writeHead(204).end();
  });

  router.add('DELETE', '/containers/{parent}/{alias}', async (req, res) => {
    if (!boolParam(req.query, 'link')) throw new InvalidArgumentError(`${req.params.parent}/${req.params.alias} names a link: remove it with link=1`);
    await containers.removeLink(`${req.params.parent}/${req.params.alias}`);
    res.writeHead(204).end();
  });

  router.add('POST', '/containers/{id}/rename', async (req, res) => {
    await containers.rename(req.params.id, req.query.get('name') ?? '');
    res.writeHead(204).end();
  });

  router.add('GET', '/containers/{id}/changes', async (req, res) => {
    const kinds = { C: 0, A: 1, D: 2 } as const;
    sendJson(
      res,
      200,
      (await containers.changes(req.params.id)).map((c) => ({ Path: c.path, Kind: kinds[c.kind] })),
    );
  });

  router.add('GET', '/containers/{id}/export', async (req, res) => {
    const stream = await containers.export(req.params.id);
    res.writeHead(200, { 'Content-Type': 'application/x-tar' });
    stream.on('error', () => res.destroy());
    req.signal.addEventListener('abort', () => stream.destroy());
    stream.pipe(res);
  });

  router.add('GET', '/containers/{id}/logs', async (req, res) => {
    const rec = containers.get(req.params.id);
    const q = req.query;
    // Docker reads a tail that is not a number as "all".
    const tail = /^\d+$/.test(q.get('tail') ?? '') ? Number(q.get('tail')) : undefined;
    const since = timestampParam(q, 'since');
    const until = timestampParam(q, 'until');
    const tty = !!rec.Config.Tty;
    if (containers.logConfigOf(rec).Type === 'none') throw new NotImplementedError('configured logging driver does not support reading');
    res.writeHead(200, { 'Content-Type': tty ? 'application/vnd.docker.raw-stream' : 'application/vnd.docker.multiplexed-stream' });
    // Headers go out now: a follower must see the 200 before the container writes anything.
    res.flushHeaders();
    const entries = readLogs(containers.logPath(rec.Id), {
      stdout: boolParam(q, 'stdout'),
      stderr: boolParam(q, 'stderr'),
      tail,
      since: since || undefined,
      until: until || undefined,
      follow: boolParam(q, 'follow'),
      isLive: () => !!containers.list().find((c) => c.Id === rec.Id)?.State.Running,
      signal: req.signal,
    });
    for await (const e of entries) {
      const text = (boolParam(q, 'timestamps') ? `${e.time} ` : '') + e.log;
      const payload = Buffer.from(text);
      if (!res.write(tty ? payload : muxFrame(e.stream === 'stderr' ? 2 : 1, payload))) await new Promise((r) => res.once('drain', r));
    }
    res.end();
  });

  router.add('POST', '/containers/{id}/resize', async (req, res) => {
    const h = intParam(req.query, 'h');
    const w = intParam(req.query, 'w');
    const sock = containers.connectAttach(req.params.id);
    if (sock) {
      sock.on('error', () => undefined);
      sock.end(resizeFrame(h ?? 24, w ?? 80));
    }
    res.writeHead(200).end();
  });

  router.add('POST', '/containers/{id}/attach', (req, res) => attach(engine, req, res));
}

async function attach(engine: Engine, req: ApiRequest, res: ServerResponse): Promise<void> {
  const containers = engine.containers;
  const rec = containers.get(req.params.id);
  const q = req.query;
  const tty = !!rec.Config.Tty;
  const wantStdin = boolParam(q, 'stdin') && !!rec.Config.OpenStdin;
  const wantOut = boolParam(q, 'stdout');
  const wantErr = boolParam(q, 'stderr');
  if (!boolParam(q, 'stream') && !boolParam(q, 'logs')) throw new InvalidArgumentError('attach needs stream=1 or logs=1');
  const detachKeys = parseDetachKeys(q.get('detachKeys') || DEFAULT_DETACH_KEYS);
  const contentType = tty ? 'application/vnd.docker.raw-stream' : 'application/vnd.docker.multiplexed-stream';
  const relay = (client: Socket, monitor: Socket) => relayMonitor(client, monitor, { tty, stdin: wantStdin, stdout: wantOut, stderr: wantErr, detachKeys });
  // logs=1: what the container wrote so far comes first, as dockerd replays it; stream=0 ends there.
  const replayLogs = async (client: Socket) => {
    if (!boolParam(q, 'logs') || containers.logConfigOf(rec).Type === 'none') return;
    await headersRead(client);
    const gone = new AbortController();
    client.once('close', () => gone.abort());
    const entries = readLogs(containers.logPath(rec.Id), { stdout: wantOut, stderr: wantErr, follow: false, isLive: () => false, signal: gone.signal });
    for await (const e of entries) {
      if (client.destroyed) return;
      const payload = Buffer.from(e.log);
      if (!client.write(tty ? payload : muxFrame(e.stream === 'stderr' ? 2 : 1, payload))) {
        await new Promise((r) => (client.once('drain', r), client.once('close', r)));
      }
    }
  };
  if (!boolParam(q, 'stream')) {
    const client = hijack(req, res, contentType);
    client.on('error', () => undefined);
    await replayLogs(client);
    client.end();
    return;
  }

  if (rec.State.Running) {
    const monitor = containers.connectAttach(rec.Id);
    if (!monitor) throw new ConflictError(`container ${rec.Id} cannot be attached to`);
    // The monitor accepts (or refuses, past its client limit) before the client gets its 101.
    try {
      await monitorReady(monitor);
    } catch (err) {
      monitor.destroy();
      if (err instanceof BerthError) throw err;
      throw new ConflictError(`container ${rec.Id} cannot be attached to: ${(err as Error).message}`);
    }
    monitor.on('error', () => undefined);
    const client = hijack(req, res, contentType);
    client.on('error', () => undefined);
    await headersRead(client); // the monitor may hold output already (see headersRead)
    await replayLogs(client);
    relay(client, monitor);
    return;
  }
  const client = hijack(req, res, contentType);
  client.on('error', () => undefined);
  await replayLogs(client);
  // Not started yet (docker run attaches first): connect while the process waits to exec, so
  // not one byte of its output is missed.
  const cancel = containers.onBeforeExec(rec.Id, (socketPath) => relay(client, connectUnix(socketPath)));
  const onExitBeforeAttach = (id: string) => {
    if (id === rec.Id) client.end();
  };
  containers.once('destroy', onExitBeforeAttach);
  client.on('close', () => {
    cancel();
    containers.off('destroy', onExitBeforeAttach);
  });
}
