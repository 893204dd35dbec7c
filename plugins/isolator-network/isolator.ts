/**
 * `isolator.network`: puts a starting container on its networks with CNI. In `attach` (the child
 * waits in its new network namespace, before its mounts) it runs ADD for each network core says
 * the container joins, caches every result in the container's state dir (`cni/<ifname>.json`),
 * tells core the endpoints (ports, DNS), and rewrites the container's hosts and resolv.conf (which
 * isolator.namespaces wrote in `plan` and bind-mounts after attach). `cleanup` runs DEL from the
 * cache (after a stop, a failed start, or a crash seen at the next berthd start).
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { IsolationTarget, Isolator, NetworkAttacher, NetworkEndpoint, NetworkJoin, NetworkService, RunningNetns } from '../../core/plugin';
import type { CniResult, CniRuntime } from './cni';

interface CacheEntry {
  network: string;
  ifname: string;
  config: Record<string, unknown>;
  result: CniResult;
  args?: Record<string, string>;
}

export class NetworkIsolator implements Isolator, NetworkAttacher {
  readonly name = 'network';

  constructor(
    private readonly cni: CniRuntime,
    private readonly service: NetworkService,
  ) {
    service.useAttacher?.(this);
  }

  async attach(target: IsolationTarget, pid: number): Promise<void> {
    if (target.joining) return; // exec joins the namespace the container already has
    const joins = await this.service.joins(target.containerId);
    if (!joins.length) return;
    const endpoints: NetworkEndpoint[] = [];
    for (const join of joins) endpoints.push(await this.join({ containerId: target.containerId, stateDir: target.stateDir, pid }, join));
    await this.service.attached(target.containerId, endpoints);
    await this.writeFiles(target, joins[0], endpoints[0]);
  }

  /** CNI ADD for one network; the result is cached for the DEL at cleanup or disconnect. */
  async join(target: RunningNetns, join: NetworkJoin): Promise<NetworkEndpoint> {
    const cacheDir = path.join(target.stateDir, 'cni');
    await fs.mkdir(cacheDir, { recursive: true, mode: 0o700 });
    const req = { containerId: target.containerId, netns: `/proc/${target.pid}/ns/net`, ifname: join.ifname };
    let result: CniResult;
    try {
      result = await this.cni.add(join.cniConfig, req);
    } catch (err) {
      // ADD may have done part of its work (an address reserved): undo it now.
      await this.cni.del(join.cniConfig, { ...req, netns: '' }).catch(() => undefined);
      throw new Error(`network ${join.network}: ${(err as Error).message}`);
    }
    const entry: CacheEntry = { network: join.network, ifname: join.ifname, config: join.cniConfig, result };
    await fs.writeFile(path.join(cacheDir, `${join.ifname}.json`), JSON.stringify(entry, null, 2), { mode: 0o600 });
    return endpointOf(join, result);
  }

  /** CNI DEL inside the live namespace, so the interface goes now and not at the container's exit. */
  async leave(target: RunningNetns, ifname: string): Promise<void> {
    const file = path.join(target.stateDir, 'cni', `${ifname}.json`);
    const entry = JSON.parse(await fs.readFile(file, 'utf8')) as CacheEntry;
    await this.cni.del(entry.config, { containerId: target.containerId, netns: `/proc/${target.pid}/ns/net`, ifname, args: entry.args }, entry.result);
    await fs.rm(file, { force: true });
  }

  async cleanup(target: IsolationTarget): Promise<void> {
    const cacheDir = path.join(target.stateDir, 'cni');
    const files = await fs.readdir(cacheDir).catch(() => [] as string[]);
    let first: Error | undefined;
    for (const f of files
      .filter((n) => n.endsWith('.json'))
      .sort()
      .reverse()) {
      const file = path.join(cacheDir, f);
      try {
        const entry = JSON.parse(await fs.readFile(file, 'utf8')) as CacheEntry;
        // The namespace is gone with the process (its veth end with it): DEL releases the rest.
        await this.cni.del(entry.config, { containerId: target.containerId, netns: '', ifname: entry.ifname, args: entry.args }, entry.result);
        await fs.rm(file, { force: true });
      } catch (err) {
        first ??= err as Error;
      }
    }
    await fs.rm(cacheDir, { recursive: true, force: true }).catch(() => undefined);
    await this.service.detached(target.containerId);
    if (first) throw first;
  }

  /** The container's own address in /etc/hosts; on networks with DNS, resolv.conf points at it. */
  private async writeFiles(target: IsolationTarget, join: NetworkJoin, ep: NetworkEndpoint): Promise<void> {
    const hostsFile = path.join(target.stateDir, 'hosts');
    const hosts = await fs.readFile(hostsFile, 'utf8').catch(() => undefined);
    if (hosts !== undefined && join.hostNames.length) {
      await fs.writeFile(hostsFile, `${hosts}${hosts.endsWith('\n') || !hosts ? '' : '\n'}${ep.address.split('/')[0]}\t${join.hostNames.join(' ')}\n`);
    }
    if (!join.dnsServer) return;
    const resolvFile = path.join(target.stateDir, 'resolv.conf');
    const resolv = await fs.readFile(resolvFile, 'utf8').catch(() => undefined);
    if (resolv === undefined) return;
    const keep = resolv.split('\n').filter((l) => l.trim() && !/^\s*nameserver\s/.test(l) && !/^\s*options\s/.test(l));
    await fs.writeFile(resolvFile, [`nameserver ${join.dnsServer}`, ...keep, 'options ndots:0'].join('\n') + '\n');
  }
}

function endpointOf(join: NetworkJoin, result: CniResult): NetworkEndpoint {
  const ifaces = result.interfaces ?? [];
  const idx = ifaces.findIndex((i) => i.name === join.ifname && i.sandbox);
  const pick = (v6: boolean) => {
    const mine = (i: { address: string }) => i.address.includes(':') === v6;
    return result.ips?.find((i) => i.interface === idx && mine(i)) ?? result.ips?.find(mine);
  };
  const ip = pick(false);
  if (!ip) throw new Error(`network ${join.network}: CNI ADD returned no IPv4 address`);
  return { network: join.network, ifname: join.ifname, address: ip.address, address6: pick(true)?.address, gateway: ip.gateway, mac: idx >= 0 ? ifaces[idx].mac : undefined };
}
