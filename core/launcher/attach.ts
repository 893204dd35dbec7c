/**
 * The monitor's attach socket protocol (`<stateDir>/attach.sock`, SOCK_STREAM). Frames both ways
 * are [1 byte type][4 byte big-endian length][payload].
 *
 *   client -> monitor: STDIN data, CLOSE_STDIN (empty), RESIZE (u16 rows, u16 cols), SIGNAL (u32)
 *   monitor -> client: STDOUT / STDERR data (with a terminal everything is STDOUT), then EXIT with
 *                      the exit record's JSON, after which the monitor closes the connection.
 */
export const ClientFrame = { stdin: 0, closeStdin: 1, resize: 2, signal: 3 } as const;
export const MonitorFrame = { stdout: 1, stderr: 2, exit: 3 } as const;

function frame(type: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header[0] = type;
  header.writeUInt32BE(payload.length, 1);
  return Buffer.concat([header, payload]);
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
