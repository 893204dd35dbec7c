/**
 * The CRI streaming server: Exec, Attach and PortForward answer with a one-time URL on a loopback
 * HTTP port of berthd; the client (kubelet, crictl) upgrades that request to SPDY/3.1 and speaks
 * Kubernetes' remotecommand (v4.channel.k8s.io) or port-forward (portforward.k8s.io) protocol on
 * it, or to a WebSocket (websocket.ts: v5/v4.channel.k8s.io for exec and attach, v4.channel.k8s.io
 * or portforward.k8s.io for port-forward).
 * The URL's token is the only authority: it is random, used once, and expires after a minute.
 */
import { randomBytes } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { connect as tcpConnect } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../../contracts/types';
import { type CommandRequest, commandStatus, ResizeParser, type TerminalSize } from './command';
import { SpdySession, type SpdyStream } from './spdy';
import { WebSocketCommands } from './websocket';

const TOKEN_TTL_MS = 60_000;
/** How long the client may take to open the streams it announced. */
const STREAMS_WAIT_MS = 30_000;
const REMOTECOMMAND = 'v4.channel.k8s.io';
const PORTFORWARD = 'portforward.k8s.io';

/** Opens a TCP connection to `port` inside the pod. */
export type PortDialer = (port: number) => Promise<Socket>;

/** A port-forward session: the ports the CRI request named (a WebSocket client may name others in `?ports=`). */
export interface ForwardRequest {
  kind: 'portforward';
  ports: number[];
  dial: PortDialer;
}

type Pending = (CommandRequest | ForwardRequest) & { expires: number };

export class StreamingServer {
  private readonly pending = new Map<string, Pending>();
  private readonly sessions = new Set<SpdySession>();
  private readonly websockets: WebSocketCommands;
  private readonly server = http.createServer((_req, res) => {
    res.writeHead(400, { 'Content-Type': 'text/plain' }).end('CRI streaming: upgrade this request to SPDY/3.1\n');
  });
  private baseUrl = '';

  constructor(private readonly log: Logger) {
    this.websockets = new WebSocketCommands(log);
    this.server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(req, socket, head));
  }

  async listen(host: string, port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve());
    });
    const addr = this.server.address() as AddressInfo;
    this.baseUrl = `http://${host}:${addr.port}`;
  }

  async close(): Promise<void> {
    for (const s of this.sessions) s.close();
    this.websockets.close();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** A one-time URL for a remotecommand session. */
  command(request: CommandRequest): string {
    return this.register({ ...request, expires: Date.now() + TOKEN_TTL_MS });
  }

  portForward(ports: number[], dial: PortDialer): string {
    return this.register({ kind: 'portforward', ports, dial, expires: Date.now() + TOKEN_TTL_MS });
  }

  private register(p: Pending): string {
    const now = Date.now();
    for (const [t, old] of this.pending) if (old.expires < now) this.pending.delete(t);
    const token = randomBytes(24).toString('base64url');
    this.pending.set(token, p);
    return `${this.baseUrl}/${p.kind}/${token}`;
  }

  private upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    const refuse = (status: number, why: string) => {
      socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n${why}\n`);
    };
    const [, kind, token] = /^\/(exec|attach|portforward)\/([A-Za-z0-9_-]+)$/.exec(req.url?.split('?')[0] ?? '') ?? [];
    const p = token ? this.pending.get(token) : undefined;
    if (!p || p.kind !== kind || p.expires < Date.now()) return refuse(404, 'CRI streaming: unknown or expired URL');
    const upgrade = String(req.headers.upgrade).toLowerCase();
    if (upgrade === 'websocket') {
      const why = this.websockets.refusal(req, p);
      if (why) return refuse(why.status, why.message);
      this.pending.delete(token);
      return this.websockets.serve(req, socket, head, p);
    }
    if (upgrade !== 'spdy/3.1') return refuse(400, `CRI streaming: unsupported upgrade ${JSON.stringify(req.headers.upgrade)} (this server speaks SPDY/3.1 and WebSocket)`);
    const offered = String(req.headers['x-stream-protocol-version'] ?? '')
      .split(',')
      .map((s) => s.trim());
    const protocol = p.kind === 'portforward' ? PORTFORWARD : REMOTECOMMAND;
    if (!offered.includes(protocol)) return refuse(403, `CRI streaming: none of the offered protocols (${offered.join(', ')}) is ${protocol}`);
    this.pending.delete(token);
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: ${protocol}\r\n\r\n`);
    if (head.length) socket.unshift(head);
    const session = new SpdySession(socket);
    this.sessions.add(session);
    session.on('close', () => this.sessions.delete(session));
    session.on('protocolError', (err: Error) => this.log.debug('CRI streaming: SPDY error', { error: err.message }));
    if (p.kind === 'portforward') this.servePortForward(session, p.dial);
    else void this.serveCommand(session, p);
  }

  private async serveCommand(session: SpdySession, request: CommandRequest): Promise<void> {
    const wanted = ['error', ...(request.stdin ? ['stdin'] : []), ...(request.stdout ? ['stdout'] : []), ...(request.stderr && !request.tty ? ['stderr'] : []), ...(request.tty ? ['resize'] : [])];
    const streams = new Map<string, SpdyStream>();
    const resizeListeners: ((size: TerminalSize) => void)[] = [];
    // A size sent before the command is running is kept for it.
    let lastSize: TerminalSize | undefined;
    const allThere = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), STREAMS_WAIT_MS);
      session.on('close', () => (clearTimeout(timer), resolve(false)));
      session.on('stream', (s: SpdyStream) => {
        const type = s.headers.streamtype;
        if (!wanted.includes(type) || streams.has(type)) return s.end();
        streams.set(type, s);
        if (type === 'resize') {
          const sizes = new ResizeParser((size) => {
            lastSize = size;
            for (const l of resizeListeners) l(size);
          });
          s.on('data', (c: Buffer) => sizes.push(c));
        }
        if (streams.size === wanted.length) (clearTimeout(timer), resolve(true));
      });
    });
    if (!(await allThere)) return session.close();
    const errorStream = streams.get('error')!;
    const status = await commandStatus(request, {
      stdin: streams.get('stdin'),
      stdout: streams.get('stdout'),
      stderr: streams.get('stderr'),
      onResize: (l) => (resizeListeners.push(l), lastSize && l(lastSize)),
    });
    errorStream.write(JSON.stringify(status));
    for (const s of streams.values()) s.end();
    session.goAway();
  }

  /** Each forwarded connection is a pair of streams (error, data) with one requestid. */
  private servePortForward(session: SpdySession, dial: PortDialer): void {
    const pairs = new Map<string, { error?: SpdyStream; data?: SpdyStream }>();
    session.on('stream', (s: SpdyStream) => {
      const { streamtype: type, port, requestid: id = port } = s.headers;
      if ((type !== 'error' && type !== 'data') || !/^\d+$/.test(port ?? '')) return s.end();
      const pair = pairs.get(id) ?? {};
      pairs.set(id, pair);
      pair[type] = s;
      if (type === 'error') s.on('data', () => undefined);
      if (!pair.error || !pair.data) return;
      pairs.delete(id);
      const { error, data } = pair as Required<typeof pair>;
      dial(Number(port)).then(
        (conn) => {
          data.on('data', (c: Buffer) => conn.write(c));
          data.on('end', () => conn.end());
          data.on('close', () => conn.destroy());
          conn.on('data', (c: Buffer) => data.write(c));
          conn.on('end', () => data.end());
          conn.on('close', () => (data.end(), error.end()));
          conn.on('error', (err) => error.write(`error forwarding port ${port}: ${err.message}`));
        },
        (err: Error) => {
          error.write(`error forwarding port ${port} to the pod: ${err.message}`);
          error.end();
          data.end();
        },
      );
    });
  }
}

/** A TCP connection, resolved once it is up. */
export function dialTcp(host: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const conn = tcpConnect({ host, port });
    conn.once('connect', () => (conn.off('error', reject), resolve(conn)));
    conn.once('error', reject);
  });
}
