/**
 * The monitor's attach socket protocol (`<stateDir>/attach.sock`, SOCK_STREAM). Frames both ways
 * are [1 byte type][4 byte big-endian length][payload].
 *
 *   client -> monitor: STDIN data, CLOSE_STDIN (empty), RESIZE (u16 rows, u16 cols), SIGNAL (u32)
 *   monitor -> client: READY (empty) first, or REFUSED (why) and the connection closes (the monitor
 *                      serves at most 1024 clients); then STDOUT / STDERR data (with a terminal
 *                      everything is STDOUT), then EXIT with the exit record's JSON, after which the
 *                      monitor closes the connection. A client that does not keep up misses output
 *                      (the monitor keeps 1 MiB per client); the container's log has all of it.
 */
import type { Socket } from 'node:net';
import { UnavailableError } from '../contracts/errors';

export const ClientFrame = { stdin: 0, closeStdin: 1, resize: 2, signal: 3 } as const;
export const MonitorFrame = { stdout: 1, stderr: 2, exit: 3, ready: 4, refused: 5 } as const;

function frame(type: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header[0] = type;
  header.writeUInt32BE(payload.length, 1);
  return Buffer.concat([header, payload]);
}

/** What a monitor sends first on each connection it serves. */
export function readyFrame(): Buffer {
  return frame(MonitorFrame.ready, Buffer.alloc(0));
}

export function stdinFrame(data: Buffer | string): Buffer {
  return frame(ClientFrame.stdin, Buffer.isBuffer(data) ? data : Buffer.from(data));
}

export function closeStdinFrame(): Buffer {
  return frame(ClientFrame.closeStdin, Buffer.alloc(0));
}

export function resizeFrame(rows: number, cols: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt16BE(rows, 0);
  b.writeUInt16BE(cols, 2);
  return frame(ClientFrame.resize, b);
}

export function signalFrame(signal: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(signal, 0);
  return frame(ClientFrame.signal, b);
}

export interface MonitorMessage {
  type: number;
  payload: Buffer;
}

/** Splits the monitor's byte stream into frames; feed it chunks, it calls back per whole frame. */
export class FrameDecoder {
  private buffered: Buffer = Buffer.alloc(0);
  constructor(private readonly onFrame: (msg: MonitorMessage) => void) {}

  push(chunk: Buffer): void {
    this.buffered = this.buffered.length ? Buffer.concat([this.buffered, chunk]) : chunk;
    while (this.buffered.length >= 5) {
      const length = this.buffered.readUInt32BE(1);
      if (this.buffered.length < 5 + length) break;
      const type = this.buffered[0];
      const payload = this.buffered.subarray(5, 5 + length);
      this.buffered = this.buffered.subarray(5 + length);
      this.onFrame({ type, payload });
    }
  }
}

/** How long a monitor may take to say READY; one started before READY existed never says it. */
const READY_WAIT_MS = 2000;

/**
 * Wait for the monitor to accept this connection (its READY frame) before promising the client a
 * stream. A REFUSED frame is a 503 carrying the monitor's reason. The socket is left paused with
 * every byte after READY still unread.
 */
export function monitorReady(socket: Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    let head = Buffer.alloc(0);
    const done = (err?: Error) => {
      clearTimeout(timer);
      socket.off('data', onData).off('error', done).off('close', onClose);
      socket.pause();
      if (err) reject(err);
      else resolve();
    };
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      if (head.length < 5 || head.length < 5 + head.readUInt32BE(1)) return;
      const end = 5 + head.readUInt32BE(1);
      if (head[0] === MonitorFrame.refused) return done(new UnavailableError(head.subarray(5, end).toString('utf8')));
      // Anything but READY came from a monitor that does not send it: keep that frame too.
      const rest = head[0] === MonitorFrame.ready ? head.subarray(end) : head;
      done();
      if (rest.length) socket.unshift(rest);
    };
    const onClose = () => done(new UnavailableError('the container monitor closed the attach connection'));
    const timer = setTimeout(() => {
      done();
      if (head.length) socket.unshift(head);
    }, READY_WAIT_MS);
    socket.on('data', onData).once('error', done).once('close', onClose);
  });
}
