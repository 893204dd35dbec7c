/**
 * Clients of berthd's CRI for tests: gRPC from the project's own proto (grpc-js), and the
 * streaming side as kubelet and crictl speak it — an HTTP upgrade to SPDY/3.1, then one stream
 * per channel — with spdy-transport (a SPDY implementation written by others) as the client, or
 * a WebSocket speaking channel.k8s.io (the `ws` package's client, also not berth's code).
 */
import * as http from 'node:http';
import type { Socket } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import WebSocket from 'ws';
import { criServices } from '../../core/cri/server';
// spdy-transport ships no types.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const spdy = require('spdy-transport') as {
  connection: { create(socket: Socket, o: { protocol: 'spdy'; isServer: false }): SpdyClient };
};

interface SpdyClient {
  start(version: number): void;
  request(o: { method: string; path: string; host: string; headers: Record<string, string> }): SpdyClientStream;
  on(event: 'error', l: (err: Error) => void): void;
}

export interface SpdyClientStream extends NodeJS.ReadWriteStream {
  on(event: string, l: (...args: any[]) => void): this;
}

export type Client = Record<string, (req: object) => Promise<any>>;

/** `options` are grpc-js channel options, e.g. `grpc.default_authority`. */
export function criClient(socket: string, version: 'v1' | 'v1alpha2' = 'v1', options: grpc.ChannelOptions = {}): { runtime: Client; image: Client; close(): void } {
  const defs = criServices(version);
  const make = (def: grpc.ServiceDefinition) => {
    const Ctor = grpc.makeGenericClientConstructor(def, 'svc');
    const c = new Ctor(`unix:${socket}`, grpc.credentials.createInsecure(), options) as unknown as grpc.Client & Record<string, Function>;
    const api: Client = {};
    for (const name of Object.keys(def)) {
      api[name] = (req) => new Promise((resolve, reject) => c[name](req, (err: Error | null, res: unknown) => (err ? reject(err) : resolve(res))));
    }
    return { api, c };
  };
  const r = make(defs.runtime);
  const i = make(defs.image);
  return { runtime: r.api, image: i.api, close: () => (r.c.close(), i.c.close()) };
}

export interface StreamingSession {
  /** Opens a stream carrying these headers (streamtype, port, requestid). */
  open(headers: Record<string, string>): SpdyClientStream;
  socket: Socket;
}

/** Upgrade a streaming URL to SPDY/3.1 offering `protocol`; rejects with the status when refused. */
export function upgradeToSpdy(url: string, protocol: string): Promise<StreamingSession> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers: { Connection: 'Upgrade', Upgrade: 'SPDY/3.1', 'X-Stream-Protocol-Version': protocol } });
    req.once('response', (res) => reject(Object.assign(new Error(`streaming URL answered ${res.statusCode}`), { status: res.statusCode })));
    req.once('error', reject);
    req.once('upgrade', (res, socket: Socket) => {
      if (res.headers['x-stream-protocol-version'] !== protocol) return reject(new Error(`negotiated ${res.headers['x-stream-protocol-version']}`));
      const conn = spdy.connection.create(socket, { protocol: 'spdy', isServer: false });
      // The server's GOAWAY at the end of a session is reported here; the streams have ended by then.
      conn.on('error', () => undefined);
      conn.start(3.1);
      resolve({ socket, open: (headers) => conn.request({ method: 'POST', path: '/', host: 'localhost', headers }) });
    });
    req.end();
  });
}

/** Everything a stream delivers until its end. */
export function collect(stream: SpdyClientStream): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    stream.on('data', (c: Buffer) => (text += c.toString('utf8')));
    stream.on('end', () => resolve(text));
    stream.on('error', reject);
  });
}

/** A WebSocket channel.k8s.io session: what arrived on each channel, the protocol the server chose. */
export interface ChannelSession {
  protocol: string;
  /** Sends `data` on `channel` (the first byte of the message). */
  send(channel: number, data: string | Buffer): void;
  /** v5's close of one channel: [255, channel]. */
  closeChannel(channel: number): void;
  /** Each channel's text once the server closes the WebSocket. */
  done: Promise<Record<number, string>>;
  /** The messages' channels in arrival order (the first says the session is up). */
  order: number[];
  /** Each channel's bytes so far. */
  received: Record<number, Buffer>;
  close(): void;
}

/** Open a streaming URL as a WebSocket offering `protocols`; rejects with the HTTP status when refused. */
export function channelWebSocket(url: string, protocols: string[]): Promise<ChannelSession> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url.replace(/^http/, 'ws'), protocols);
    const received: Record<number, Buffer> = {};
    const order: number[] = [];
    ws.on('message', (data: Buffer) => {
      order.push(data[0]);
      received[data[0]] = Buffer.concat([received[data[0]] ?? Buffer.alloc(0), data.subarray(1)]);
    });
    const text = () => Object.fromEntries(Object.entries(received).map(([k, v]) => [k, v.toString('utf8')]));
    const done = new Promise<Record<number, string>>((res) => ws.on('close', () => res(text())));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c));
      res.on('end', () => reject(Object.assign(new Error(`streaming URL answered ${res.statusCode}: ${body}`), { status: res.statusCode, body })));
    });
    ws.once('error', reject);
    ws.once('open', () =>
      resolve({
        protocol: ws.protocol,
        send: (channel, data) => ws.send(Buffer.concat([Buffer.from([channel]), Buffer.from(data)])),
        closeChannel: (channel) => ws.send(Buffer.from([255, channel])),
        done,
        order,
        received,
        close: () => ws.close(),
      }),
    );
  });
}
