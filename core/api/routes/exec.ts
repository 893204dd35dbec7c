/** Exec routes in the Docker Engine API's shape: create, start (hijacked or detached), inspect, resize. */
import type { Socket } from 'node:net';
import { connectUnix } from '../../util/unix-socket';
import type { Engine } from '../../kernel/engine';
import type { ExecConfig } from '../../containers/exec-sessions';
import { resizeFrame } from '../../launcher/attach';
import { muxFrame } from '../../containers/logs';
import { DEFAULT_DETACH_KEYS, parseDetachKeys } from '../detach-keys';
import { headersRead, hijack, relayMonitor } from '../hijack';
import { EXEC_CONFIG, EXEC_START, checkBody } from '../validate';
import { type Router, httpStatus, intParam, readJsonBody, sendJson } from '../router';

export function execRoutes(router: Router, engine: Engine): void {
  const containers = engine.containers;

  router.add('POST', '/containers/{id}/exec', async (req, res) => {
    const body = checkBody<ExecConfig>(await readJsonBody(req), EXEC_CONFIG, 'exec config') ?? ({} as ExecConfig);
    if (body.DetachKeys) parseDetachKeys(body.DetachKeys); // refused at create, as dockerd does
    sendJson(res, 201, { Id: containers.execCreate(req.params.id, body) });
  });

  router.add('POST', '/exec/{id}/start', async (req, res) => {
    const body = checkBody<{ Detach?: boolean; Tty?: boolean }>(await readJsonBody(req), EXEC_START, 'exec start config') ?? {};
    const session = containers.execs.get(req.params.id);
    if (body.Detach) {
      await containers.execStart(session.ID);
      res.writeHead(200).end();
      return;
    }
    const tty = body.Tty ?? !!session.Config.Tty;
    // Connect while the process waits to exec (no output is missed; the socket buffers it), and
    // hijack only once it runs, so start errors still get a normal HTTP error response.
    let monitor: Socket | undefined;
    let started: Awaited<ReturnType<typeof containers.execStart>>;
    try {
      started = await containers.execStart(session.ID, (path) => {
        monitor = connectUnix(path);
        monitor.on('error', () => undefined);
      });
    } catch (err) {
      // A process that could not start (no such executable, bad user): a client that asked to
      // upgrade gets the stream anyway with the reason on it, and the exec's exit code says
      // 126, as dockerd's does — the docker CLI shows nothing but "unable to upgrade" otherwise.
      const upgrade = !!req.raw.headers.upgrade;
      const status = httpStatus(err);
      if (!upgrade || status === 409 || session.Running || session.ExitCode !== null) throw err;
      monitor?.destroy();
      const message = (err as Error).message;
      session.ExitCode = 126;
      const client = hijack(req, res, tty ? 'application/vnd.docker.raw-stream' : 'application/vnd.docker.multiplexed-stream');
      client.on('error', () => undefined);
      const line = Buffer.from(`${message}\r\n`);
      client.end(tty ? line : muxFrame(2, line));
      return;
    }
    const { exited } = started;
    const client = hijack(req, res, tty ? 'application/vnd.docker.raw-stream' : 'application/vnd.docker.multiplexed-stream');
    client.on('error', () => undefined);
    if (!monitor) {
      client.end();
      return;
    }
    // The process already ran while berthd attached, so its output may be waiting. Sent right
    // behind the 101, it can reach the client in the same read as the headers, and clients that
    // read the headers through a buffered reader and then switch to the raw socket (docker-py)
    // lose it. dockerd's output never comes that early: hold it until the client read the headers.
    await headersRead(client);
    relayMonitor(client, monitor, {
      tty,
      stdin: !!session.Config.AttachStdin,
      stdout: session.Config.AttachStdout !== false,
      stderr: session.Config.AttachStderr !== false,
      detachKeys: parseDetachKeys(session.Config.DetachKeys || DEFAULT_DETACH_KEYS),
      onExit: (exit) => {
        session.Running = false;
        session.ExitCode = exit.error ? 126 : exit.exitCode;
      },
    });
    exited.catch(() => client.end());
  });

  router.add('GET', '/exec/{id}/json', (req, res) => sendJson(res, 200, containers.execs.inspect(req.params.id)));

  router.add('POST', '/exec/{id}/resize', (req, res) => {
    const h = intParam(req.query, 'h');
    const w = intParam(req.query, 'w');
    const session = containers.execs.get(req.params.id);
    if (session.Running) {
      const sock = connectUnix(`${session.stateDir}/attach.sock`);
      sock.on('error', () => undefined);
      sock.end(resizeFrame(h ?? 24, w ?? 80));
    }
    res.writeHead(201).end();
  });
}
