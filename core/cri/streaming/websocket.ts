/**
 * Exec and attach over a WebSocket (kubelet's and kubectl's newer transport): the subprotocols
 * v5.channel.k8s.io and v4.channel.k8s.io. Every binary message starts with its channel: 0 stdin,
 * 1 stdout, 2 stderr, 3 error (the metav1.Status at the end), 4 resize (JSON sizes). v5 adds a
 * close: the message [255, channel] ends that channel (stdin's EOF, which v4 cannot send).
 * The framing itself is the `ws` package's.
 */
import type * as http from 'node:http';
import { PassThrough, type Duplex, Writable } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import type { Logger } from '../../contracts/types';
import { type CommandRequest, commandStatus, ResizeParser, type TerminalSize } from './command';

/** In the server's order of preference. */
const PROTOCOLS = ['v5.channel.k8s.io', 'v4.channel.k8s.io'];
const CHANNEL = { stdin: 0, stdout: 1, stderr: 2, error: 3, resize: 4, close: 255 } as const;

function offered(req: http.IncomingMessage): string[] {
  return String(req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim()).filter(Boolean);
}

export class WebSocketCommands {
  private readonly server = new WebSocketServer({
    noServer: true,
    handleProtocols: (protocols) => PROTOCOLS.find((p) => protocols.has(p)) ?? false,
  });

  constructor(private readonly log: Logger) {}

  /** Why this upgrade cannot be served, if it cannot. */
  refusal(req: http.IncomingMessage): string | undefined {
    const protocols = offered(req);
    if (PROTOCOLS.some((p) => protocols.includes(p))) return undefined;
    return `CRI streaming: none of the offered WebSocket subprotocols (${protocols.join(', ') || 'none'}) is ${PROTOCOLS.join(' or ')}`;
  }

  serve(req: http.IncomingMessage, socket: Duplex, head: Buffer, request: CommandRequest): void {
    this.server.handleUpgrade(req, socket, head, (ws) => {
      ws.on('error', (err) => this.log.debug('CRI streaming: WebSocket error', { error: err.message }));
      void this.session(ws, request);
    });
  }

  close(): void {
    for (const ws of this.server.clients) ws.terminate();
    this.server.close();
  }

  private async session(ws: WebSocket, request: CommandRequest): Promise<void> {
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
}
