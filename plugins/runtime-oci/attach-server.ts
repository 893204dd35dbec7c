/**
 * The attach socket berthd serves for each running OCI container (runc has no monitor of its own
 * to serve one): output frames from the log pump, the exit frame at the end, and SIGNAL frames
 * passed on to the caller; stdin and resize have nowhere to go. Protocol: core/launcher/attach.ts.
 */
import { mkdir, rm } from 'node:fs/promises';
import * as net from 'node:net';
import { dirname } from 'node:path';
import { FrameDecoder, MonitorFrame, readyFrame, type ExitStatus } from '../../core/plugin';
import { LogPump } from './logs';

/** A container's berthd-side companions: the log pump and the attach socket. */
interface Session {
  pump: LogPump;
  server: net.Server;
  socketPath: string;
  clients: Set<net.Socket>;
}

function frame(type: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header[0] = type;
  header.writeUInt32BE(payload.length, 1);
  return Buffer.concat([header, payload]);
}

export class AttachServers {
  private readonly sessions = new Map<string, Session>();

  /** Serve the container of `stateDir` at `socketPath` (once; a second call keeps the first). */
  async open(stateDir: string, socketPath: string, logPath: string, onSignal: (signal: number) => void): Promise<void> {
    if (this.sessions.has(stateDir)) return;
    await mkdir(dirname(socketPath), { recursive: true, mode: 0o700 });
    await rm(socketPath, { force: true });
    const pump = new LogPump(stateDir, logPath);
    const clients = new Set<net.Socket>();
    const server = net.createServer((sock) => {
      clients.add(sock);
      sock.on('error', () => undefined);
      sock.write(readyFrame()); // as the native monitor does: berthd waits for it before a 101
      sock.on('close', () => clients.delete(sock));
      const decoder = new FrameDecoder(({ type, payload }) => {
        // SIGNAL frames (3) carry a u32 signal number.
        if (type === 3 && payload.length === 4) onSignal(payload.readUInt32BE(0));
      });
      sock.on('data', (c: Buffer) => decoder.push(c));
    });
    pump.on('data', (stream: 'stdout' | 'stderr', data: Buffer) => {
      const out = frame(stream === 'stdout' ? MonitorFrame.stdout : MonitorFrame.stderr, data);
      for (const c of clients) c.write(out);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => resolve());
    });
    server.unref();
    pump.follow();
    this.sessions.set(stateDir, { pump, server, socketPath, clients });
  }

  /** Drain the log, tell attach clients the exit, close the socket. */
  async close(stateDir: string, exit?: ExitStatus): Promise<void> {
    const s = this.sessions.get(stateDir);
    if (!s) return;
    this.sessions.delete(stateDir);
    await s.pump.finish();
    const payload = Buffer.from(JSON.stringify(exit ?? { exitCode: 255, signal: null, oomKilled: false, finishedAt: new Date().toISOString(), error: 'start failed' }));
    const end = frame(MonitorFrame.exit, payload);
    for (const c of s.clients) c.end(end);
    await new Promise<void>((r) => s.server.close(() => r()));
    await rm(s.socketPath, { force: true });
  }

  /** berthd is shutting down: stop serving every container; the containers keep running. */
  async closeAll(): Promise<void> {
    for (const s of this.sessions.values()) {
      s.pump.stop();
      for (const c of s.clients) c.destroy();
      s.server.close();
      await rm(s.socketPath, { force: true });
    }
    this.sessions.clear();
  }
}
