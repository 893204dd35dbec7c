/**
 * A container's endpoints on its networks. At start the network isolator asks which networks to
 * join (NetworkService.joins), runs CNI ADD in the container's namespace and reports what it made
 * (attached); at stop, detached. While the container runs, connect and disconnect hot-plug an
 * endpoint through the isolator's NetworkAttacher, as dockerd does.
 */
import { ConflictError, NotFoundError } from '../contracts/errors';
import type { NetworkAttacher, NetworkEndpoint, NetworkJoin, RunningNetns } from '../contracts/network';
import { cniConfig } from './cni-config';
import type { HostBridges } from './host';
import type { NetworkDns } from './names';
import type { PortPublisher } from './ports';
import { type ContainerNet, type EndpointConfig, type EndpointRequest, type NetworkRecord, DEFAULT_NETWORK } from './records';
import type { ContainerSettings } from './settings';
import type { NetworkStore } from './store';

export interface EndpointDeps {
  store: NetworkStore;
  settings: ContainerSettings;
  ports: PortPublisher;
  dns: NetworkDns;
  bridges: HostBridges;
  nameOf: (id: string) => string | undefined;
  hostnameOf: (id: string) => string | undefined;
  running: (id: string) => RunningNetns | undefined;
}

export class Endpoints {
  /** Networks a container is joining (between joins() and attached()/detached()). */
  private readonly joining = new Map<string, string[]>();
  private attacher?: NetworkAttacher;

  constructor(private readonly deps: EndpointDeps) {}

  useAttacher(attacher: NetworkAttacher): void {
    this.attacher = attacher;
  }

  // ---- start and stop: called by the network isolator ------------------------------------------

  async joins(containerId: string): Promise<NetworkJoin[]> {
    const c = this.deps.store.container(containerId);
    if (!c) return [];
    const joins: NetworkJoin[] = [];
    const names = Object.keys(c.Networks);
    this.joining.set(containerId, names);
    for (const [i, name] of names.entries()) {
      const net = this.deps.store.byName(name);
      if (!net) throw new NotFoundError(`network ${name} not found (removed while the container was stopped?)`);
      await this.deps.bridges.up(net);
      joins.push(this.joinFor(c, net, c.Networks[name], `eth${i}`));
    }
    return joins;
  }

  async attached(containerId: string, endpoints: NetworkEndpoint[]): Promise<void> {
    const c = this.deps.store.container(containerId);
    this.joining.delete(containerId);
    if (!c) return;
    c.Endpoints = endpoints;
    c.Ports = [];
    try {
      for (const ep of endpoints) if (ep.network !== DEFAULT_NETWORK) await this.deps.dns.up(ep.network);
      await this.deps.ports.publish(c);
    } catch (err) {
      await this.detached(containerId).catch(() => undefined);
      throw err;
    }
    await this.deps.store.saveRuntime(c);
  }

  async detached(containerId: string): Promise<void> {
    this.joining.delete(containerId);
    await this.deps.ports.unpublish(containerId);
    const c = this.deps.store.container(containerId);
    if (c && (c.Endpoints || c.Ports)) {
      delete c.Endpoints;
      delete c.Ports;
      await this.deps.store.saveRuntime(c).catch(() => undefined);
    }
    // Bridges stay until network rm or berthd's stop: the next start is quicker.
  }

  /** Whether a running or starting container has an endpoint on the network. */
  inUse(network: string): boolean {
    for (const c of this.deps.store.allContainers()) if (c.Endpoints?.some((e) => e.network === network)) return true;
    for (const list of this.joining.values()) if (list.includes(network)) return true;
    return false;
  }

  // ---- hot-plug: docker network connect / disconnect ---------------------------------------------

  /**
   * Join a network. A stopped container joins at its next start; a running one now, through the
   * network isolator's hot-plug (CNI ADD in its namespace), as dockerd does.
   */
  async connect(net: NetworkRecord, containerId: string, req: EndpointRequest): Promise<void> {
    const c = this.deps.store.requireContainer(containerId);
    const name = this.deps.nameOf(containerId);
    if (c.Mode === 'none' || c.Mode === 'host') throw new ConflictError(`container ${name} uses network mode ${c.Mode} and cannot join networks`);
    if (net.Name in c.Networks) throw new ConflictError(`endpoint with name ${name} already exists in network ${net.Name}`);
    const ep = this.deps.settings.endpointConfig(net, req, undefined, containerId);
    const running = this.deps.running(containerId);
    if (running) {
      if (!this.attacher) throw new ConflictError(`container ${name} is running and the network isolator offers no hot-plug: stop it, connect, start it`);
      await this.deps.bridges.up(net);
      const used = new Set((c.Endpoints ?? []).map((e) => e.ifname));
      let i = 0;
      while (used.has(`eth${i}`)) i++;
      const endpoint = await this.attacher.join(running, this.joinFor(c, net, ep, `eth${i}`));
      c.Networks[net.Name] = ep;
      c.Endpoints = [...(c.Endpoints ?? []), endpoint];
      if (net.Name !== DEFAULT_NETWORK) await this.deps.dns.up(net.Name);
      if (c.Endpoints.length === 1) await this.deps.ports.publish(c);
      await this.deps.store.save(c);
      return;
    }
    c.Networks[net.Name] = ep;
    await this.deps.store.save(c);
  }

  async disconnect(net: NetworkRecord, containerId: string): Promise<void> {
    const c = this.deps.store.requireContainer(containerId);
    if (!(net.Name in c.Networks)) throw new NotFoundError(`container ${this.deps.nameOf(containerId)} is not connected to network ${net.Name}`);
    const running = this.deps.running(containerId);
    const endpoint = c.Endpoints?.find((e) => e.network === net.Name);
    if (running && endpoint) {
      if (!this.attacher) throw new ConflictError(`container ${this.deps.nameOf(containerId)} is running and the network isolator offers no hot-plug: stop it first`);
      const primary = c.Endpoints![0] === endpoint;
      await this.attacher.leave(running, endpoint.ifname);
      c.Endpoints = c.Endpoints!.filter((e) => e !== endpoint);
      if (primary) {
        // Published ports follow the primary endpoint: forward them to the next one, if any.
        await this.deps.ports.unpublish(containerId);
        c.Ports = [];
        await this.deps.ports.publish(c);
      }
    }
    // NetworkMode stays as created (docker-compose disconnects and reconnects a new container).
    delete c.Networks[net.Name];
    await this.deps.store.save(c);
  }

  private joinFor(c: ContainerNet, net: NetworkRecord, ep: EndpointConfig, ifname: string): NetworkJoin {
    const cname = this.deps.nameOf(c.Id);
    const hostname = this.deps.hostnameOf(c.Id);
    return {
      network: net.Name,
      cniConfig: cniConfig(net, this.deps.store.ipamDir, ep),
      ifname,
      hostNames: [...new Set([hostname, cname].filter((n): n is string => !!n))],
      dnsServer: net.Name === DEFAULT_NETWORK ? undefined : net.Gateway,
    };
  }
}
