/**
 * Hijacked connections (attach, exec start): the HTTP connection becomes a raw byte stream, and
 * bytes are relayed between the client and the monitor's attach socket (core/launcher/attach.ts).
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { FrameDecoder, MonitorFrame, closeStdinFrame, stdinFrame } from '../launcher/attach';
import { muxFrame } from '../containers/logs';
import { unreadBytes } from '../sys/socket';
import { DetachWatcher } from './detach-keys';
import type { ApiRequest } from './router';

/** Take over the connection: 101 (or 200 for clients that did not ask to upgrade), then raw I/O. */
export function hijack(req: ApiRequest, res: ServerResponse, contentType: string): Socket {
  const socket = req.raw.socket as Socket;
  const upgrade = /upgrade/i.test(String(req.raw.headers.connection ?? '')) || !!req.raw.headers.upgrade;
  res.detachSocket(socket);
  // The stream is established: it may stay quiet as long as it likes.
  socket.setTimeout(0);
  socket.write(upgrade ? `HTTP/1.1 101 UPGRADED\r\nContent-Type: ${contentType}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n` : `HTTP/1.1 200 OK\r\nContent-Type: ${contentType}\r\n\r\n`);
  const head = (req.raw as { head?: Buffer }).head;
  if (head?.length) process.nextTick(() => socket.unshift(head));
  return socket;
}

/** The longest berthd waits for a client to read a hijacked response's headers. */
const HEADERS_READ_TIMEOUT_MS = 500;

/**
 * Resolves once the peer has read everything written so far (or after the timeout). Output sent
 * right behind the 101 can reach the client in the same read as the headers, and clients that
 * read the headers through a buffered reader and then switch to the raw socket (docker-py) lose
 * it; dockerd's output never comes that early.
 */
export async function headersRead(client: Socket): Promise<void> {
  const fd = (client as unknown as { _handle?: { fd?: number } })._handle?.fd;
  const deadline = Date.now() + HEADERS_READ_TIMEOUT_MS;
  while (fd !== undefined && fd >= 0 && !client.destroyed && Date.now() < deadline) {
    if (client.writableLength === 0 && unreadBytes(fd) === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

export interface RelayOptions {
  tty: boolean;
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  /** Called with the monitor's exit record before the client's stream ends. */
  onExit?: (exit: { exitCode: number; error?: string | null }) => void;
  /** With a TTY and stdin: the sequence that detaches the client (its stdin stays open for others). */
  detachKeys?: Buffer;
}

/**
 * Monitor frames -> client (raw with a TTY, Docker's 8-byte frames without); client -> stdin.
 * A client that reads slower than the container writes stops berthd reading the monitor until
 * it catches up, so berthd holds at most one socket's worth for it (the monitor bounds the rest).
 */
export function relayMonitor(client: Socket, monitor: Socket, o: RelayOptions): void {
  monitor.on('error', () => client.end());
  let draining = false;
  const toClient = (data: Buffer) => {
    if (client.write(data) || draining || client.destroyed) return;
    draining = true;
    monitor.pause();
    client.once('drain', () => {
      draining = false;
      monitor.resume();
    });
  };
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
    if (type === MonitorFrame.refused) {
      const line = Buffer.from(`${payload.toString('utf8')}\r\n`);
      client.end(o.tty ? line : muxFrame(2, line));
      return;
    }
    if (type !== MonitorFrame.stdout && type !== MonitorFrame.stderr) return;
    const stream = type === MonitorFrame.stderr ? 2 : 1;
    if ((stream === 1 && !o.stdout) || (stream === 2 && !o.stderr)) return;
    toClient(o.tty ? payload : muxFrame(stream, payload));
  });
  monitor.on('data', (chunk: Buffer) => decoder.push(chunk));
  monitor.on('close', () => client.end());
  monitor.resume(); // paused while berthd waited for the monitor's READY
  if (o.stdin) {
    const watcher = o.tty && o.detachKeys ? new DetachWatcher(o.detachKeys) : undefined;
    let detached = false;
    client.on('data', (chunk: Buffer) => {
      if (detached) return;
      const { pass, detach } = watcher ? watcher.feed(chunk) : { pass: chunk, detach: false };
      // Stdin the container does not read backs up to the client the same way.
      if (pass.length && !monitor.write(stdinFrame(pass))) {
        client.pause();
        monitor.once('drain', () => client.resume());
      }
      if (!detach) return;
      // As dockerd: the client's connection closes, the container and its stdin go on.
      detached = true;
      monitor.end();
      client.destroy();
    });
    client.on('end', () => {
      if (!detached) monitor.write(closeStdinFrame());
    });
  } else client.resume();
  client.on('close', () => {
    // Read on to the monitor's close, so the socket goes even if it was paused for this client.
    monitor.resume();
    monitor.end();
  });
}
