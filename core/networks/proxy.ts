/**
 * Published ports as a userland proxy in berthd: listen on HOSTIP:HOSTPORT and pipe each TCP
 * connection (or UDP datagram flow) to CONTAINERIP:PORT. No iptables rule is involved, it works
 * for 127.0.0.1, and closing the listener releases the port.
 */
import * as dgram from 'node:dgram';
import * as net from 'node:net';

export interface ProxyTarget {
  proto: 'tcp' | 'udp';
  hostIp: string;
  /** 0 picks a free port; the chosen one is returned by start(). */
  hostPort: number;
  containerIp: string;
  containerPort: number;
}

export interface Proxy {
  readonly hostPort: number;
  close(): Promise<void>;
}

const UDP_IDLE_MS = 30_000;

export async function startProxy(t: ProxyTarget): Promise<Proxy> {
  return t.proto === 'tcp' ? startTcp(t) : startUdp(t);
}

async function startTcp(t: ProxyTarget): Promise<Proxy> {
  const conns = new Set<net.Socket>();
  const server = net.createServer({ noDelay: true }, (client) => {
    const upstream = net.connect({ host: t.containerIp, port: t.containerPort, noDelay: true });
    conns.add(client);
    conns.add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
      conns.delete(client);
      conns.delete(upstream);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: t.hostIp, port: t.hostPort, exclusive: true }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as net.AddressInfo).port;
  return {
    hostPort: port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of conns) c.destroy();
        server.close(() => resolve());
      }),
  };
}

async function startUdp(t: ProxyTarget): Promise<Proxy> {
  const socket = dgram.createSocket('udp4');
  // One upstream socket per client address, so replies find their way back; idle ones close.
  const flows = new Map<string, { sock: dgram.Socket; timer: NodeJS.Timeout }>();
  socket.on('message', (msg, rinfo) => {
    const key = `${rinfo.address}:${rinfo.port}`;
    let flow = flows.get(key);
    if (!flow) {
      const sock = dgram.createSocket('udp4');
      sock.on('message', (reply) => socket.send(reply, rinfo.port, rinfo.address));
      sock.on('error', () => undefined);
      flow = { sock, timer: setTimeout(() => undefined, 0) };
      flows.set(key, flow);
    }
    clearTimeout(flow.timer);
    const f = flow;
    f.timer = setTimeout(() => {
      f.sock.close();
      flows.delete(key);
    }, UDP_IDLE_MS);
    f.sock.send(msg, t.containerPort, t.containerIp);
  });
  socket.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(t.hostPort, t.hostIp, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  return {
    hostPort: socket.address().port,
    close: async () => {
      for (const f of flows.values()) {
        clearTimeout(f.timer);
        f.sock.close();
      }
      flows.clear();
      await new Promise<void>((resolve) => socket.close(() => resolve()));
    },
  };
}

/** Whether HOSTIP:PORT can be bound right now (a port held by something outside berth). */
export async function portFree(proto: 'tcp' | 'udp', hostIp: string, port: number): Promise<boolean> {
  try {
    const p = await startProxy({ proto, hostIp, hostPort: port, containerIp: '127.0.0.1', containerPort: 9 });
    await p.close();
    return true;
  } catch {
    return false;
  }
}
