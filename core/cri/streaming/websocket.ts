/**
 * The streaming sessions over a WebSocket (kubelet's and kubectl's newer transport). Every binary
 * message starts with its channel.
 * - exec and attach, subprotocols v5.channel.k8s.io and v4.channel.k8s.io: 0 stdin, 1 stdout,
 *   2 stderr, 3 error (the metav1.Status at the end), 4 resize (JSON sizes). v5 adds a close: the
 *   message [255, channel] ends that channel (stdin's EOF, which v4 cannot send).
 * - port-forward, v4.channel.k8s.io or portforward.k8s.io: port i of `?ports=` (else the CRI
 *   request's) has data channel 2i and error channel 2i+1, each opened with the port number as two
 *   little-endian bytes; one TCP connection per port for the WebSocket's life.
 * The framing itself is the `ws` package's.
 */
import type * as http from 'node:http';
import type { Socket } from 'node:net';
import { PassThrough, type Duplex, Writable } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import type { Logger } from '../../contracts/types';
import { type CommandRequest, commandStatus, ResizeParser, type TerminalSize } from './command';
import type { ForwardRequest } from './server';

/** In the server's order of preference. */
const COMMAND_PROTOCOLS = ['v5.channel.k8s.io', 'v4.channel.k8s.io'];
const FORWARD_PROTOCOLS = ['v4.channel.k8s.io', 'portforward.k8s.io'];
const CHANNEL = { stdin: 0, stdout: 1, stderr: 2, error: 3, resize: 4, close: 255 } as const;

function offered(req: http.IncomingMessage): string[] {
  return String(req.headers['sec-websocket-protocol'] ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
}

/** `?ports=8080,9090`, as kubectl sends them; undefined when absent. */
function queryPorts(req: http.IncomingMessage): number[] | undefined {
  const raw = new URL(req.url ?? '/', 'http://x').searchParams.getAll('ports').flatMap((v) => v.split(','));
  return raw.length ? raw.map((p) => Number(p.trim())) : undefined;
}

const validPort = (p: number) => Number.isInteger(p) && p > 0 && p < 65536;

export class WebSocketCommands {
  private readonly server = new WebSocketServer({ noServer: true, handleProtocols: (protocols, req) => this.chooseProtocol([...protocols], req) || false });
  private readonly forwardKind = new WeakSet<http.IncomingMessage>();

  constructor(private readonly log: Logger) {}

  private chooseProtocol(protocols: string[], req: http.IncomingMessage): string | undefined {
    return (this.forwardKind.has(req) ? FORWARD_PROTOCOLS : COMMAND_PROTOCOLS).find((p) => protocols.includes(p));
  }

  /** Why this upgrade cannot be served, if it cannot. */
  refusal(req: http.IncomingMessage, p: CommandRequest | ForwardRequest): { status: number; message: string } | undefined {
    const protocols = offered(req);
    const wanted = p.kind === 'portforward' ? FORWARD_PROTOCOLS : COMMAND_PROTOCOLS;
    if (!wanted.some((w) => protocols.includes(w))) {
      return { status: 403, message: `CRI streaming: none of the offered WebSocket subprotocols (${protocols.join(', ') || 'none'}) is ${wanted.join(' or ')}` };
    }
    if (p.kind !== 'portforward') return undefined;
    const ports = queryPorts(req) ?? p.ports;
    if (!ports.length) return { status: 400, message: 'CRI streaming: port-forward over a WebSocket needs the ports (query parameter ports=8080,...)' };
    const bad = ports.find((n) => !validPort(n));
    return bad === undefined ? undefined : { status: 400, message: `CRI streaming: ports: ${bad} is not a TCP port` };
  }

  serve(req: http.IncomingMessage, socket: Duplex, head: Buffer, p: CommandRequest | ForwardRequest): void {
    if (p.kind === 'portforward') this.forwardKind.add(req);
    this.server.handleUpgrade(req, socket, head, (ws) => {
      ws.on('error', (err) => this.log.debug('CRI streaming: WebSocket error', { error: err.message }));
      if (p.kind === 'portforward') this.forward(ws, queryPorts(req) ?? p.ports, p);
      else void this.command(ws, p);
    });
  }

  close(): void {
    for (const ws of this.server.clients) ws.terminate();
    this.server.close();
  }

  private async command(ws: WebSocket, request: CommandRequest): Promise<void> {
    const canClose = ws.protocol === 'v5.channel.k8s.io';
    const channel = (num: number) =>
      new Writable({
        write(chunk: Buffer, _enc, done) {
          if (ws.readyState !== WebSocket.OPEN) return done();
          ws.send(Buffer.concat([Buffer.from([num]), chunk]), done);
        },
      });
    const stdin = request.stdin ? new PassThrough() : undefined;
    const stdout = request.stdout ? channel(CHANNEL.stdout) : undefined;
    const stderr = request.stderr && !request.tty ? channel(CHANNEL.stderr) : undefined;
    const resizeListeners: ((size: TerminalSize) => void)[] = [];
    let lastSize: TerminalSize | undefined;
    const sizes = new ResizeParser((size) => {
      lastSize = size;
      for (const l of resizeListeners) l(size);
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary || !data.length) return;
      const body = data.subarray(1);
      if (data[0] === CHANNEL.stdin) stdin?.write(body);
      else if (data[0] === CHANNEL.resize && request.tty) sizes.push(body);
      else if (data[0] === CHANNEL.close && canClose && body[0] === CHANNEL.stdin) stdin?.end();
    });
    // The client gone: stdin ends, and the output channels close (attach ends on that).
    ws.on('close', () => {
      stdin?.end();
      stdout?.destroy();
      stderr?.destroy();
    });
    // Kubernetes' servers say the session is up with an empty message on the first output channel.
    ws.send(Buffer.from([stdout ? CHANNEL.stdout : stderr ? CHANNEL.stderr : CHANNEL.error]));
    const status = await commandStatus(request, { stdin, stdout, stderr, onResize: (l) => (resizeListeners.push(l), lastSize && l(lastSize)) });
    // All output is sent before the status that ends the session.
    await Promise.all([stdout, stderr].map((s) => s && !s.destroyed && new Promise<void>((resolve) => s.end(resolve))));
    if (ws.readyState !== WebSocket.OPEN) return;
    ws.send(Buffer.concat([Buffer.from([CHANNEL.error]), Buffer.from(JSON.stringify(status))]));
    ws.close(1000);
  }

  private forward(ws: WebSocket, ports: number[], request: ForwardRequest): void {
    const send = (channel: number, data: Buffer | string) => ws.readyState === WebSocket.OPEN && ws.send(Buffer.concat([Buffer.from([channel]), Buffer.from(data)]));
    const conns = ports.map((port, i) => {
      const portBytes = Buffer.alloc(2);
      portBytes.writeUInt16LE(port);
      send(2 * i, portBytes);
      send(2 * i + 1, portBytes);
      // What the client sends before the connection is up waits for it.
      const state: { conn?: Socket; pending: Buffer[] } = { pending: [] };
      request.dial(port).then(
        (conn) => {
          state.conn = conn;
          for (const b of state.pending.splice(0)) conn.write(b);
          conn.on('data', (c: Buffer) => send(2 * i, c));
          conn.on('error', (err) => send(2 * i + 1, `error forwarding port ${port}: ${err.message}`));
          // The pod closed the connection: nothing more can flow on this WebSocket's port.
          conn.on('close', () => ws.close(1000));
        },
        (err: Error) => {
          send(2 * i + 1, `error forwarding port ${port} to the pod: ${err.message}`);
          ws.close(1000);
        },
      );
      return state;
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary || !data.length || data[0] % 2 !== 0) return;
      const state = conns[data[0] / 2];
      if (!state) return;
      if (state.conn) state.conn.write(data.subarray(1));
      else state.pending.push(Buffer.from(data.subarray(1)));
    });
    ws.on('close', () => {
      for (const s of conns) s.conn?.destroy();
    });
  }
}
