/**
 * Networks, as the engine and the API see them: this facade keeps the manager's public methods
 * and the NetworkService contract, and leaves the work to
 * - store.ts: network records and containers' network settings on disk (records.ts: their shapes);
 * - create.ts and ipam.ts: network create, subnet pools, requested addresses (host-local's state
 *   in `<root>/networks/ipam/`, fed by cni-config.ts);
 * - settings.ts: a container's network part of create; endpoints.ts: joining at start, leaving at
 *   stop, connect/disconnect while running (hot-plug);
 * - host.ts (bridges), ports.ts (published ports, a userland proxy), names.ts (the DNS responder
 *   of each user-defined network), views.ts (Docker's JSON).
 * The container side (CNI ADD/DEL) is the network isolator's (plugins/isolator-network), which
 * calls this manager through the NetworkService contract.
 *
 * A network's bridge (and DNS responder) is made when its first container starts and stays while
 * berthd runs, so later starts skip that work; `network rm` and berthd's stop take unused bridges
 * away, so nothing stays on the host once the containers are gone.
 */
import { ConflictError, ForbiddenError } from '../contracts/errors';
import type { NetworkAttacher, NetworkEndpoint, NetworkJoin, NetworkService, RunningNetns } from '../contracts/network';
import type { Logger } from '../contracts/types';
import { cniConfig } from './cni-config';
import { type NetworkCreateRequest, createNetwork, ensureDefaultNetwork } from './create';
import { Endpoints } from './endpoints';
import { HostBridges, linkNames } from './host';
import { Ipam } from './ipam';
import { NetworkDns } from './names';
import { PortPublisher } from './ports';
import { type ContainerNet, type EndpointConfig, type EndpointRequest, type NetworkRecord, DEFAULT_NETWORK } from './records';
import { ContainerSettings } from './settings';
import { NetworkStore } from './store';
import { networkInspect, networkSettings, summaryPorts } from './views';

export type { EndpointRequest } from './records';

export interface NetworkManagerDeps {
  root: string;
  log: Logger;
  /** A container's current name without the leading slash (undefined when it is gone). */
  nameOf: (id: string) => string | undefined;
  hostnameOf: (id: string) => string | undefined;
  /** The network namespace of a running container (its init's pid), for connect/disconnect. */
  running: (id: string) => RunningNetns | undefined;
}

export class NetworkManager implements NetworkService {
  private readonly store: NetworkStore;
  private readonly ipam: Ipam;
  private readonly ports: PortPublisher;
  private readonly dns: NetworkDns;
  private readonly bridges = new HostBridges();
  private readonly containerSettings: ContainerSettings;
  private readonly endpoints: Endpoints;

  constructor(private readonly deps: NetworkManagerDeps) {
    this.store = new NetworkStore(deps.root);
    this.ipam = new Ipam(deps.root, this.store);
    this.ports = new PortPublisher(this.store, deps.nameOf);
    this.dns = new NetworkDns(this.store, deps.nameOf);
    this.containerSettings = new ContainerSettings(this.store, this.ipam, this.ports, deps.nameOf);
    this.endpoints = new Endpoints({ ...deps, store: this.store, settings: this.containerSettings, ports: this.ports, dns: this.dns, bridges: this.bridges });
  }

  useAttacher(attacher: NetworkAttacher): void {
    this.endpoints.useAttacher(attacher);
  }

  get ipamDir(): string {
    return this.store.ipamDir;
  }

  async open(): Promise<void> {
    await this.store.open();
    await ensureDefaultNetwork(this.store, this.ipam);
  }

  // ---- networks ------------------------------------------------------------------------------

  /** By name, full id or unique id prefix. */
  find(ref: string): NetworkRecord | undefined {
    return this.store.find(ref);
  }

  get(ref: string): NetworkRecord {
    return this.store.get(ref);
  }

  list(): NetworkRecord[] {
    return this.store.list();
  }

  async create(req: NetworkCreateRequest): Promise<{ Id: string; Warning: string }> {
    const rec = await createNetwork(req, this.store, this.ipam);
    return { Id: rec.Id, Warning: '' };
  }

  async remove(ref: string): Promise<void> {
    const rec = this.get(ref);
    if (rec.Name === DEFAULT_NETWORK) throw new ForbiddenError(`${rec.Name} is a pre-defined network and cannot be removed`);
    const users = this.store.usersOf(rec.Name);
    if (users.length) {
      const names = users.map((u) => this.deps.nameOf(u.Id) ?? u.Id.slice(0, 12));
      throw new ConflictError(`error while removing network: network ${rec.Name} id ${rec.Id} is in use by container(s) ${names.join(', ')}`);
    }
    await this.teardown(rec);
    await this.store.removeRecord(rec);
    await this.ipam.release(rec);
  }

  /** Docker's network inspect shape. */
  inspect(ref: string) {
    return networkInspect(this.get(ref), this.store, this.deps.nameOf);
  }

  /** The CNI network configuration list berth runs for a container on a network. */
  cniConfig(rec: NetworkRecord, ep?: EndpointConfig): Record<string, unknown> {
    return cniConfig(rec, this.store.ipamDir, ep);
  }

  // ---- container settings (create, connect, disconnect, remove) -----------------------------

  /** The network part of a container's create request, checked; nothing is kept until save(). */
  configure(id: string, hostConfig: Record<string, unknown>, endpoints: Record<string, EndpointRequest> | undefined, exposedPorts: string[], containerMac?: string): Promise<ContainerNet> {
    return this.containerSettings.configure(id, hostConfig, endpoints, exposedPorts, containerMac);
  }

  save(cfg: ContainerNet): Promise<void> {
    return this.store.save(cfg);
  }

  /** The container is being removed. */
  async forget(id: string): Promise<void> {
    await this.endpoints.detached(id).catch(() => undefined);
    await this.store.forget(id);
  }

  connect(ref: string, containerId: string, req: EndpointRequest = {}): Promise<void> {
    return this.endpoints.connect(this.get(ref), containerId, req);
  }

  disconnect(ref: string, containerId: string): Promise<void> {
    return this.endpoints.disconnect(this.get(ref), containerId);
  }

  // ---- NetworkService: called by the network isolator -----------------------------------------

  joins(containerId: string): Promise<NetworkJoin[]> {
    return this.endpoints.joins(containerId);
  }

  attached(containerId: string, endpoints: NetworkEndpoint[]): Promise<void> {
    return this.endpoints.attached(containerId, endpoints);
  }

  detached(containerId: string): Promise<void> {
    return this.endpoints.detached(containerId);
  }

  // ---- what inspect, ps and port show --------------------------------------------------------

  /** NetworkSettings of `docker inspect`. */
  settings(id: string) {
    return networkSettings(id, this.store.container(id), this.store);
  }

  /** Ports of `GET /containers/json`. */
  summaryPorts(id: string): { IP?: string; PrivatePort: number; PublicPort?: number; Type: string }[] {
    return summaryPorts(this.store.container(id));
  }

  networkNames(id: string): string[] {
    return Object.keys(this.store.container(id)?.Networks ?? {});
  }

  // ---- daemon lifecycle ----------------------------------------------------------------------

  /** After a berthd restart: running containers get their ports and DNS names back. */
  async recover(live: string[]): Promise<void> {
    const alive = new Set(live);
    for (const c of this.store.allContainers()) {
      if (!c.Endpoints) continue;
      if (!alive.has(c.Id)) continue; // its exit was handled: the isolator's cleanup detached it
      const endpoints = c.Endpoints;
      try {
        for (const name of new Set(endpoints.map((e) => e.network))) {
          const net = this.store.byName(name);
          if (net) await this.bridges.up(net);
        }
        await this.endpoints.attached(c.Id, endpoints);
      } catch (err) {
        this.deps.log.warn('could not restore the network of a running container', { container: c.Id, error: (err as Error).message });
      }
    }
    // Bridges of networks nobody uses any more (a crash between ADD and DEL) go.
    const links = await linkNames().catch(() => new Set<string>());
    for (const net of this.store.list()) if (!this.endpoints.inUse(net.Name) && links.has(net.Bridge)) await this.teardown(net);
  }

  /**
   * berthd stops: listeners close; bridges nobody uses go (running containers keep theirs, and
   * the next berthd gives them their ports and DNS back).
   */
  async close(): Promise<void> {
    await this.ports.close();
    await this.dns.close();
    const links = await linkNames().catch(() => new Set<string>());
    for (const net of this.store.list()) if (!this.endpoints.inUse(net.Name) && links.has(net.Bridge)) await this.teardown(net).catch(() => undefined);
  }

  private async teardown(net: NetworkRecord): Promise<void> {
    await this.dns.stop(net.Name);
    await this.bridges.down(net.Bridge);
  }
}
