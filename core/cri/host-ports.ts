/**
 * Host ports of pods on a CNI network whose config has no portmap plugin: a userland TCP proxy on
 * the host (as berth's own networks have in core/networks) to the pod's IP. No iptables: that is
 * the portmap plugin's, when the config asks for it.
 */
import * as net from 'node:net';
import { ConflictError, NotImplementedError } from '../contracts/errors';
import type { Logger } from '../contracts/types';
import type { PortMapping } from './types';

export class HostPortProxies {
  private readonly open = new Map<string, net.Server[]>();

  constructor(private readonly log: Logger) {}

  /** Listens for every TCP host port of the pod; nothing stays open if one fails. */
  async start(sandboxId: string, podIp: string | undefined, mappings: PortMapping[]): Promise<void> {
    const wanted = mappings.filter((m) => m.host_port);
    if (!wanted.length) return;
    if (!podIp) throw new ConflictError(`pod sandbox ${sandboxId}: its CNI network gave it no IP address for its host ports`);
    const udp = wanted.find((m) => (m.protocol ?? 'TCP') !== 'TCP');
    if (udp) throw new NotImplementedError(`port_mappings: host port ${udp.host_port}/${udp.protocol}: only TCP host ports are proxied without the CNI portmap plugin`);
    const servers: net.Server[] = [];
    this.open.set(sandboxId, servers);
    try {
      for (const m of wanted) servers.push(await this.listen(m, podIp));
    } catch (err) {
      this.stop(sandboxId);
      throw err;
    }
  }

  stop(sandboxId: string): void {
    for (const s of this.open.get(sandboxId) ?? []) s.close();
    this.open.delete(sandboxId);
  }

  close(): void {
    for (const id of [...this.open.keys()]) this.stop(id);
  }

  private listen(m: PortMapping, podIp: string): Promise<net.Server> {
    const server = net.createServer((client) => {
      const upstream = net.connect({ host: podIp, port: m.container_port || m.host_port! });
      client.pipe(upstream).pipe(client);
      const end = () => (client.destroy(), upstream.destroy());
      client.on('error', end);
      upstream.on('error', (err) => (this.log.debug('CRI host port: pod connection failed', { port: m.host_port, error: err.message }), end()));
    });
    return new Promise((resolve, reject) => {
      server.once('error', (err) => reject(new ConflictError(`port_mappings: cannot listen on ${m.host_ip || '0.0.0.0'}:${m.host_port}: ${err.message}`)));
      server.listen(m.host_port, m.host_ip || '0.0.0.0', () => resolve(server));
    });
  }
}
