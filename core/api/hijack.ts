/**
 * Hijacked connections (attach, exec start): the HTTP connection becomes a raw byte stream, and
 * bytes are relayed between the client and the monitor's attach socket (core/launcher/attach.ts).
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { FrameDecoder, MonitorFrame, closeStdinFrame, stdinFrame } from '../launcher/attach';
import { muxFrame } from '../containers/logs';
import type { ApiRequest } from './router';

/** Take over the connection: 101 (or 200 for clients that did not ask to upgrade), then raw I/O. */
export function hijack(req: ApiRequest, res: ServerResponse, contentType: string): Socket {
  const socket = req.raw.socket as Socket;
  const upgrade = /upgrade/i.test(String(req.raw.headers.connection ?? '')) || !!req.raw.headers.upgrade;
  res.detachSocket(socket);
  // The stream is established: it may stay quiet as long as it likes.
  socket.setTimeout(0);
  socket.write(
    upgrade
      ? `HTTP/1.1 101 UPGRADED\r\nContent-Type: ${contentType}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n`
      : `HTTP/1.1 200 OK\r\nContent-Type: ${contentType}\r\n\r\n`,
  );
  const head = (req.raw as { head?: Buffer }).head;
  if (head?.length) process.nextTick(() => socket.unshift(head));
  return socket;
}


export interface RelayOptions {
  tty: boolean;
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  /** Called with the monitor's exit record before the client's stream ends. */
  onExit?: (exit: { exitCode: number }) => void;
}

/** Monitor frames -> client (raw with a TTY, Docker's 8-byte frames without); client -> stdin. */
export function relayMonitor(client: Socket, monitor: Socket, o: RelayOptions): void {
  monitor.on('error', () => client.end());
  const decoder = new FrameDecoder(({ type, payload }) => {
    if (type === MonitorFrame.exit) {
      try {
        o.onExit?.(JSON.parse(payload.toString('utf8')));
      } catch {
        /* a malformed record only loses the early exit code; the runtime's wait still has it */
      }
      client.end();
      monitor.end();
      return;
    }
    const stream = type === MonitorFrame.stderr ? 2 : 1;
    if ((stream === 1 && !o.stdout) || (stream === 2 && !o.stderr)) return;
    client.write(o.tty ? payload : muxFrame(stream, payload));
  });
  monitor.on('data', (chunk: Buffer) => decoder.push(chunk));
  monitor.on('close', () => client.end());
  if (o.stdin) {
    client.on('data', (chunk: Buffer) => monitor.write(stdinFrame(chunk)));
    client.on('end', () => monitor.write(closeStdinFrame()));
  } else client.resume();
  client.on('close', () => monitor.end());
}
