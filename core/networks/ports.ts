/**
 * Published ports: host ports checked free when a container is created, and while it runs a
 * userland proxy (proxy.ts) per port, forwarding to the container's primary endpoint.
 */
import { ConflictError } from '../contracts/errors';
import { type Proxy, portFree, startProxy } from './proxy';
import { type ContainerNet, type PortBinding, parsePortKey } from './records';
import type { NetworkStore } from './store';

export class PortPublisher {
  private readonly proxies = new Map<string, Proxy[]>();

  constructor(
    private readonly store: NetworkStore,
    private readonly nameOf: (id: string) => string | undefined,
  ) {}

  /** Fixed host ports must not be in use by a running container or anything else on the host. */
  async check(id: string, cfg: ContainerNet): Promise<void> {
    const wanted = Object.entries(cfg.PortBindings).flatMap(([key, list]) =>
      list.filter((b) => b.HostPort && b.HostPort !== '0').map((b) => ({ key, proto: parsePortKey(key).proto, hostIp: b.HostIp || '0.0.0.0', hostPort: Number(b.HostPort) })),
    );
    const seen = new Set<string>();
    for (const w of wanted) {
      const label = `${w.hostIp}:${w.hostPort}/${w.proto}`;
      if (seen.has(label)) throw new ConflictError(`Bind for ${label} failed: port is published twice by this container`);
      seen.add(label);
      for (const other of this.store.allContainers()) {
        if (other.Id === id) continue;
        const clash = (other.Ports ?? []).find((p) => p.proto === w.proto && p.hostPort === w.hostPort && (p.hostIp === w.hostIp || p.hostIp === '0.0.0.0' || w.hostIp === '0.0.0.0'));
        if (clash) throw new ConflictError(`Bind for ${label} failed: port is already allocated by container ${this.nameOf(other.Id) ?? other.Id}`);
      }
      if (!(await portFree(w.proto, w.hostIp, w.hostPort))) throw new ConflictError(`Bind for ${label} failed: port is already in use on the host`);
    }
  }

  /** Listen on the container's host ports, forwarding to its primary endpoint; records them in `c.Ports`. */
  async publish(c: ContainerNet): Promise<void> {
    const primary = c.Endpoints?.[0];
    if (!primary) return;
    const containerIp = primary.address.split('/')[0];
    const wanted: { key: string; b: PortBinding }[] = [];
    for (const [key, list] of Object.entries(c.PortBindings)) for (const b of list) wanted.push({ key, b });
    if (c.PublishAllPorts) for (const key of c.ExposedPorts) if (!c.PortBindings[key]) wanted.push({ key, b: { HostIp: '', HostPort: '' } });
    const proxies: Proxy[] = [];
    this.proxies.set(c.Id, proxies);
    for (const { key, b } of wanted) {
      const { port, proto } = parsePortKey(key);
      const hostIp = b.HostIp || '0.0.0.0';
      const hostPort = b.HostPort ? Number(b.HostPort) : 0;
      let proxy: Proxy;
      try {
        proxy = await startProxy({ proto, hostIp, hostPort, containerIp, containerPort: port });
      } catch (err) {
        throw new ConflictError(`Bind for ${hostIp}:${hostPort}/${proto} failed: ${(err as NodeJS.ErrnoException).code === 'EADDRINUSE' ? 'port is already allocated' : (err as Error).message}`);
      }
      proxies.push(proxy);
      c.Ports!.push({ proto, containerPort: port, hostIp, hostPort: proxy.hostPort });
    }
  }

  /** Stop forwarding a container's ports. */
  async unpublish(containerId: string): Promise<void> {
    for (const p of this.proxies.get(containerId) ?? []) await p.close().catch(() => undefined);
    this.proxies.delete(containerId);
  }

  async close(): Promise<void> {
    for (const list of this.proxies.values()) for (const p of list) await p.close().catch(() => undefined);
    this.proxies.clear();
  }
}
