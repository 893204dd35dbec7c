/** Client side of hijacked streams (attach, exec) and Docker's multiplexed frames. */
import * as http from 'node:http';
import type { Socket } from 'node:net';
import type { Client } from './client';
import { ApiError } from './client';

/** POST with `Upgrade: tcp` and return the raw socket once berthd answers 101. */
export function hijack(client: Client, path: string, query: Record<string, string | number | boolean | undefined>, body?: unknown): Promise<Socket> {
  const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = http.request({
      ...client.connection(),
      path: client.url(path, query),
      method: 'POST',
      headers: { Connection: 'Upgrade', Upgrade: 'tcp', ...(data ? { 'Content-Type': 'application/json', 'Content-Length': data.length } : {}) },
    });
    req.on('upgrade', (_res, socket, head) => {
      if (head.length) socket.unshift(head);
      resolve(socket);
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        let message = Buffer.concat(chunks).toString();
        try {
          message = JSON.parse(message).message ?? message;
        } catch {
          /* plain text */
        }
        reject(new ApiError(res.statusCode ?? 500, message));
      });
    });
    req.on('error', reject);
    req.end(data);
  });
}

/** Split Docker's 8-byte-header frames into stdout/stderr writes. */
export function demux(socket: NodeJS.ReadableStream, stdout: NodeJS.WritableStream, stderr: NodeJS.WritableStream): Promise<void> {
  let buf: Buffer = Buffer.alloc(0);
  return new Promise((resolve) => {
    socket.on('data', (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      while (buf.length >= 8) {
        const len = buf.readUInt32BE(4);
        if (buf.length < 8 + len) break;
        (buf[0] === 2 ? stderr : stdout).write(buf.subarray(8, 8 + len));
        buf = buf.subarray(8 + len);
      }
    });
    socket.on('end', resolve);
    socket.on('close', resolve);
    socket.on('error', resolve);
  });
}
