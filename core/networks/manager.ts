/**
 * Networks: records (`<root>/networks/records/<id>.json`), per-container network settings
 * (`<root>/networks/containers/<id>.json`: networks joined, aliases, requested IPs, port
 * bindings, and while running the endpoints CNI made and the host ports in use), host-local IPAM
 * state (`<root>/networks/ipam/`), bridges, published ports (userland proxy) and the DNS
 * responder of each user-defined network. The container side (CNI ADD/DEL) is the network
 * isolator's (plugins/network-cni), which calls this manager through the NetworkService contract.
 *
 * A network's bridge (and DNS responder) is made when its first container starts and stays while
 * berthd runs, so later starts skip that work; `network rm` and berthd's stop take unused bridges
 * away, so nothing stays on the host once the containers are gone.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BerthError, ConflictError, InvalidArgumentError, NotFoundError } from '../contracts/errors';
import type { NetworkEndpoint, NetworkJoin, NetworkService } from '../contracts/network';
import type { Logger } from '../contracts/types';
import { ensureDir, readJson, writeJsonAtomic } from '../util/fs';
import { DnsResponder } from './dns';
import { deleteBridge, ensureBridge, formatIPv4, hostRoutes, linkExists, maskOf, overlaps, parseCidr, parseIPv4 } from './host';
import { type Proxy, portFree, startProxy } from './proxy';

export interface NetworkRecord {
  Name: string;
  Id: string;
  Created: string;
  Driver: 'bridge';
  Scope: 'local';
  /** The bridge device: berth0 for the default network, br-<id12> for the others. */
  Bridge: string;
  Subnet: string;
  Gateway: string;
  Labels: Record<string, string>;
}

export interface PortBinding {
  HostIp?: string;
  HostPort?: string;
}

export interface PublishedPort {
  proto: 'tcp' | 'udp';
  containerPort: number;
  hostIp: string;
  hostPort: number;
}

/** A container's network settings, kept by this manager (not in the container record). */
export interface ContainerNet {
  Id: string;
  /** HostConfig.NetworkMode, with 'default' read as 'bridge'. */
  Mode: string;
  /** Networks joined, in join order (the first is the primary one: eth0, published ports). */
  Networks: Record<string, { Aliases: string[]; IPv4Address?: string; MacAddress?: string }>;
  PortBindings: Record<string, PortBinding[]>;
  PublishAllPorts: boolean;
  ExposedPorts: string[];
  /** While running: what CNI made, and the host ports in use. */
  Endpoints?: NetworkEndpoint[];
  Ports?: PublishedPort[];
}

export interface NetworkManagerDeps {
  root: string;
  log: Logger;
  /** A container's current name without the leading slash (undefined when it is gone). */
  nameOf: (id: string) => string | undefined;
  hostnameOf: (id: string) => string | undefined;
  isRunning: (id: string) => boolean;
}

export const DEFAULT_NETWORK = 'bridge';
const DEFAULT_BRIDGE_DEVICE = 'berth0';
const DEFAULT_ROOT = '/var/lib/berth';
/** berth's address pool: /24s out of 10.207.0.0/16, skipping any that overlaps a host route. */
const POOL_BASE = parseIPv4('10.207.0.0')!;
const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const PREDEFINED = new Set(['bridge', 'host', 'none', 'default']);

export function parsePortKey(key: string): { port: number; proto: 'tcp' | 'udp' } {
  const m = /^(\d{1,5})(?:\/(tcp|udp))?$/.exec(key);
  const port = m ? Number(m[1]) : NaN;
  if (!m || port < 1 || port > 65535) throw new InvalidArgumentError(`invalid port ${JSON.stringify(key)}: expected PORT[/tcp|udp] with 1 <= PORT <= 65535`);
  return { port, proto: (m[2] as 'tcp' | 'udp') ?? 'tcp' };
}

export class NetworkManager implements NetworkService {
  private readonly dir: string;
  private readonly records = new Map<string, NetworkRecord>();
  private readonly containers = new Map<string, ContainerNet>();
  private readonly proxies = new Map<string, Proxy[]>();
  private readonly dns = new Map<string, DnsResponder>();
  /** Networks a container is joining (between joins() and attached()/detached()). */
  private readonly joining = new Map<string, string[]>();
  private readonly readyBridges = new Set<string>();

  constructor(private readonly deps: NetworkManagerDeps) {
    this.dir = path.join(deps.root, 'networks');
  }

  get ipamDir(): string {
    return path.join(this.dir, 'ipam');
  }

  async open(): Promise<void> {
    for (const d of ['records', 'containers', 'ipam']) await ensureDir(path.join(this.dir, d));
    for (const f of await fs.promises.readdir(path.join(this.dir, 'records'))) {
      if (!f.endsWith('.json')) continue;
      const rec = await readJson<NetworkRecord>(path.join(this.dir, 'records', f));
      if (rec) this.records.set(rec.Id, rec);
    }
    for (const f of await fs.promises.readdir(path.join(this.dir, 'containers'))) {
      if (!f.endsWith('.json')) continue;
      const c = await readJson<ContainerNet>(path.join(this.dir, 'containers', f));
      if (c) this.containers.set(c.Id, c);
    }
    if (!this.byName(DEFAULT_NETWORK)) {
      const subnet = await this.freeSubnet();
      await this.saveRecord(this.newRecord(DEFAULT_NETWORK, subnet, undefined, {}, this.defaultBridgeDevice()));
    }
  }

  // ---- network records ---------------------------------------------------------------------

  private byName(name: string): NetworkRecord | undefined {
    return [...this.records.values()].find((r) => r.Name === name);
  }

  /** By name, full id or unique id prefix. */
  find(ref: string): NetworkRecord | undefined {
    const byName = this.byName(ref === 'default' ? DEFAULT_NETWORK : ref);
    if (byName) return byName;
    if (this.records.has(ref)) return this.records.get(ref);
    if (/^[a-f0-9]{1,64}$/.test(ref)) {
      const matches = [...this.records.values()].filter((r) => r.Id.startsWith(ref));
      if (matches.length > 1) throw new ConflictError(`network ${ref} is ambiguous (${matches.length} matches found based on ID prefix)`);
      return matches[0];
    }
    return undefined;
  }

  get(ref: string): NetworkRecord {
    const r = this.find(ref);
    if (!r) throw new NotFoundError(`network ${ref} not found`);
    return r;
  }

  list(): NetworkRecord[] {
    return [...this.records.values()].sort((a, b) => a.Name.localeCompare(b.Name));
  }

  private newRecord(name: string, subnet: { network: number; len: number }, gateway: string | undefined, labels: Record<string, string>, bridge?: string): NetworkRecord {
    const id = createHash('sha256').update(`${name}\0${randomBytes(16).toString('hex')}`).digest('hex');
    return {
      Name: name,
      Id: id,
      Created: new Date().toISOString(),
      Driver: 'bridge',
      Scope: 'local',
      Bridge: bridge ?? `br-${id.slice(0, 12)}`,
      Subnet: `${formatIPv4(subnet.network)}/${subnet.len}`,
      Gateway: gateway ?? formatIPv4(subnet.network + 1),
      Labels: labels,
    };
  }

  private async saveRecord(rec: NetworkRecord): Promise<void> {
    await writeJsonAtomic(path.join(this.dir, 'records', `${rec.Id}.json`), rec);
    this.records.set(rec.Id, rec);
  }

  private taken(): [number, number][] {
    return this.list().map((r) => {
      const c = parseCidr(r.Subnet)!;
      return [c.network, c.len];
    });
  }

  /**
   * berthd on the standard root owns berth0; a berthd on another root (tests, a second instance)
   * gets a device named after its root, so two daemons never share a bridge.
   */
  private defaultBridgeDevice(): string {
    return this.deps.root === DEFAULT_ROOT ? DEFAULT_BRIDGE_DEVICE : `berth-${this.rootHash.toString(16).padStart(8, '0')}`;
  }

  private get rootHash(): number {
    return createHash('sha256').update(this.deps.root).digest().readUInt32BE(0);
  }

  /**
   * A /24 of berth's pool clear of the host's routes and of this daemon's networks. The search
   * starts at an offset taken from the root, so daemons on other roots pick other subnets.
   */
  private async freeSubnet(): Promise<{ network: number; len: number }> {
    const busy = [...(await hostRoutes()).filter(([, len]) => len > 0), ...this.taken()];
    const start = this.deps.root === DEFAULT_ROOT ? 0 : this.rootHash % 256;
    for (let n = 0; n < 256; n++) {
      const i = (start + n) % 256;
      const candidate: [number, number] = [POOL_BASE + i * 256, 24];
      if (!busy.some((b) => overlaps(b, candidate))) return { network: candidate[0], len: 24 };
    }
    throw new BerthError('no free subnet left in 10.207.0.0/16 for a new network: pass --subnet', 503);
  }

  /** POST /networks/create (Docker's body: Name, Driver, IPAM.Config[{Subnet, Gateway}], Labels). */
  async create(req: { Name?: string; Driver?: string; IPAM?: { Config?: { Subnet?: string; Gateway?: string }[] }; Labels?: Record<string, string>; CheckDuplicate?: boolean }): Promise<{ Id: string; Warning: string }> {
    const name = req?.Name;
    if (!name || !NAME.test(name)) throw new InvalidArgumentError(`invalid network name ${JSON.stringify(name ?? '')}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
    if (PREDEFINED.has(name)) throw new BerthError(`operation is not permitted on predefined ${name} network`, 403);
    if (this.byName(name)) throw new ConflictError(`network with name ${name} already exists`);
    if (req.Driver && req.Driver !== 'bridge') throw new InvalidArgumentError(`network driver ${JSON.stringify(req.Driver)} is not supported (bridge)`);
    const ipam = req.IPAM?.Config?.[0];
    let subnet: { network: number; len: number };
    if (ipam?.Subnet) {
      const parsed = parseCidr(ipam.Subnet);
      if (!parsed) throw new InvalidArgumentError(`invalid subnet ${JSON.stringify(ipam.Subnet)}: expected an IPv4 CIDR with a prefix length from 8 to 30`);
      subnet = parsed;
      const mine: [number, number] = [parsed.network, parsed.len];
      const clash = this.list().find((r) => {
        const c = parseCidr(r.Subnet)!;
        return overlaps([c.network, c.len], mine);
      });
      if (clash) throw new ConflictError(`subnet ${ipam.Subnet} overlaps network ${clash.Name} (${clash.Subnet})`);
      const route = (await hostRoutes()).find((r) => r[1] > 0 && overlaps(r, mine));
      if (route) throw new ConflictError(`subnet ${ipam.Subnet} overlaps a route of the host (${formatIPv4(route[0])}/${route[1]})`);
    } else {
      subnet = await this.freeSubnet();
    }
    let gateway: string | undefined;
    if (ipam?.Gateway) {
      const g = parseIPv4(ipam.Gateway);
      if (g === undefined || ((g & maskOf(subnet.len)) >>> 0) !== subnet.network || g === subnet.network) {
        throw new InvalidArgumentError(`invalid gateway ${JSON.stringify(ipam.Gateway)}: not a host address in ${formatIPv4(subnet.network)}/${subnet.len}`);
      }
      gateway = ipam.Gateway;
    }
    const rec = this.newRecord(name, subnet, gateway, req.Labels ?? {});
    await this.saveRecord(rec);
    return { Id: rec.Id, Warning: '' };
  }

  /** Containers configured on a network (running or not). */
  private usersOf(name: string): ContainerNet[] {
    return [...this.containers.values()].filter((c) => name in c.Networks);
  }

  async remove(ref: string): Promise<void> {
    const rec = this.get(ref);
    if (rec.Name === DEFAULT_NETWORK) throw new BerthError(`${rec.Name} is a pre-defined network and cannot be removed`, 403);
    const users = this.usersOf(rec.Name);
    if (users.length) {
      const names = users.map((u) => this.deps.nameOf(u.Id) ?? u.Id.slice(0, 12));
      throw new ConflictError(`error while removing network: network ${rec.Name} id ${rec.Id} is in use by container(s) ${names.join(', ')}`);
    }
    await this.teardown(rec);
    await fs.promises.rm(path.join(this.dir, 'records', `${rec.Id}.json`), { force: true });
    await fs.promises.rm(path.join(this.ipamDir, `berth-${rec.Name}`), { recursive: true, force: true });
    this.records.delete(rec.Id);
  }

  /** Docker's network inspect shape. */
  inspect(ref: string) {
    const rec = this.get(ref);
    const containers: Record<string, unknown> = {};
    for (const c of this.usersOf(rec.Name)) {
      const ep = c.Endpoints?.find((e) => e.network === rec.Name);
      if (!ep) continue;
      containers[c.Id] = { Name: this.deps.nameOf(c.Id) ?? '', EndpointID: endpointId(c.Id, rec.Name), MacAddress: ep.mac ?? '', IPv4Address: ep.address, IPv6Address: '' };
    }
    return {
      Name: rec.Name,
      Id: rec.Id,
      Created: rec.Created,
      Scope: rec.Scope,
      Driver: rec.Driver,
      EnableIPv6: false,
      IPAM: { Driver: 'host-local', Options: {}, Config: [{ Subnet: rec.Subnet, Gateway: rec.Gateway }] },
      // Containers reach their subnet and the host's gateway address only: no route out.
      Internal: true,
      Attachable: false,
      Ingress: false,
      ConfigFrom: { Network: '' },
      ConfigOnly: false,
      Containers: containers,
      Options: { 'com.docker.network.bridge.name': rec.Bridge, 'berth.dns': rec.Name === DEFAULT_NETWORK ? 'false' : 'true' },
      Labels: rec.Labels,
    };
  }

  /** The CNI network configuration list berth runs for a network. */
  cniConfig(rec: NetworkRecord): Record<string, unknown> {
    return {
      cniVersion: '1.0.0',
      name: `berth-${rec.Name}`,
      plugins: [
        {
          type: 'bridge',
          bridge: rec.Bridge,
          // berth sets the gateway address itself and gives containers no default route.
          isGateway: false,
          ipMasq: false,
          ipam: { type: 'host-local', ranges: [[{ subnet: rec.Subnet, gateway: rec.Gateway }]], dataDir: this.ipamDir },
        },
      ],
    };
  }

  // ---- container settings (create, connect, disconnect, remove) -----------------------------

  /**
   * Check a create request's network part and build the container's settings; nothing is kept
   * until save(). Port conflicts with running containers (or anything else holding the port)
   * are refused here, so a conflicting container is never created.
   */
  async configure(
    id: string,
    hostConfig: Record<string, unknown>,
    endpoints: Record<string, { Aliases?: string[] | null; IPAMConfig?: { IPv4Address?: string } | null; MacAddress?: string }> | undefined,
    exposedPorts: string[],
    /** Config.MacAddress: the primary interface's MAC (an endpoint's own MacAddress wins). */
    macAddress?: string,
  ): Promise<ContainerNet> {
    const rawMode = (hostConfig.NetworkMode as string | undefined) || 'default';
    const mode = rawMode === 'default' ? DEFAULT_NETWORK : rawMode;
    const cfg: ContainerNet = { Id: id, Mode: mode, Networks: {}, PortBindings: {}, PublishAllPorts: hostConfig.PublishAllPorts === true, ExposedPorts: [] };
    // An endpoint must name a network that exists (dockerd: 404), even one other than NetworkMode.
    for (const name of Object.keys(endpoints ?? {})) if (mode !== 'host' && !this.find(name)) throw new NotFoundError(`network ${name} not found`);
    if (mode !== 'none' && mode !== 'host') {
      const net = this.find(mode);
      if (!net) throw new NotFoundError(`network ${mode} not found`);
      const ep = endpoints?.[mode] ?? endpoints?.[rawMode] ?? endpoints?.[net.Id];
      const mac = ep?.MacAddress || macAddress;
      if (mac && !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(mac)) throw new InvalidArgumentError(`invalid MAC address ${JSON.stringify(mac)} (expected six hex pairs, 02:42:ac:11:00:02)`);
      cfg.Networks[net.Name] = { ...this.endpointConfig(net, ep?.Aliases ?? [], ep?.IPAMConfig?.IPv4Address), ...(mac ? { MacAddress: mac.toLowerCase() } : {}) };
    } else if (macAddress) {
      throw new InvalidArgumentError(`conflicting options: mac-address and the network mode ${mode}`);
    } else if (endpoints && Object.keys(endpoints).length && mode === 'host') {
      throw new InvalidArgumentError('NetworkingConfig: a container on the host network cannot join other networks');
    }
    for (const key of exposedPorts) cfg.ExposedPorts.push(`${parsePortKey(key).port}/${parsePortKey(key).proto}`);
    const bindings = (hostConfig.PortBindings ?? {}) as Record<string, PortBinding[] | null>;
    if (typeof bindings !== 'object' || Array.isArray(bindings)) throw new InvalidArgumentError('HostConfig.PortBindings: expected {"PORT/PROTO": [{HostIp, HostPort}]}');
    for (const [key, list] of Object.entries(bindings)) {
      const { port, proto } = parsePortKey(key);
      const norm = `${port}/${proto}`;
      for (const b of list ?? []) {
        const hostIp = b?.HostIp || '';
        if (hostIp && parseIPv4(hostIp) === undefined) throw new InvalidArgumentError(`invalid host address ${JSON.stringify(hostIp)} for port ${norm}: expected an IPv4 address`);
        const hp = b?.HostPort ?? '';
        if (hp !== '' && !(/^\d{1,5}$/.test(hp) && Number(hp) <= 65535)) throw new InvalidArgumentError(`invalid host port ${JSON.stringify(hp)} for port ${norm}: expected a number from 0 to 65535`);
        (cfg.PortBindings[norm] ??= []).push({ HostIp: hostIp, HostPort: hp });
      }
    }
    if ((Object.keys(cfg.PortBindings).length || cfg.PublishAllPorts) && (mode === 'none' || mode === 'host')) {
      if (Object.keys(cfg.PortBindings).length) throw new InvalidArgumentError(`published ports need a network: NetworkMode ${mode} has none to publish from`);
    }
    await this.checkPorts(id, cfg);
    return cfg;
  }

  private endpointConfig(net: NetworkRecord, aliases: string[], ip: string | undefined): { Aliases: string[]; IPv4Address?: string } {
    if (aliases.length && net.Name === DEFAULT_NETWORK) throw new InvalidArgumentError('network-scoped aliases are only supported for user-defined networks');
    for (const a of aliases) if (!NAME.test(a)) throw new InvalidArgumentError(`invalid network alias ${JSON.stringify(a)}`);
    if (ip) {
      if (net.Name === DEFAULT_NETWORK) throw new InvalidArgumentError('user specified IP address is supported on user defined networks only');
      const n = parseIPv4(ip);
      const c = parseCidr(net.Subnet)!;
      const broadcast = (c.network | ~maskOf(c.len)) >>> 0;
      if (n === undefined || ((n & maskOf(c.len)) >>> 0) !== c.network || n === c.network || n === broadcast || ip === net.Gateway) {
        throw new InvalidArgumentError(`invalid IP address ${JSON.stringify(ip)} for network ${net.Name}: not a free host address in ${net.Subnet}`);
      }
      const holder = [...this.containers.values()].find((o) => o.Networks[net.Name]?.IPv4Address === ip);
      if (holder) throw new ConflictError(`address ${ip} on network ${net.Name} is already assigned to container ${this.deps.nameOf(holder.Id) ?? holder.Id}`);
    }
    return { Aliases: aliases, ...(ip ? { IPv4Address: ip } : {}) };
  }

  /** Fixed host ports must not be in use by a running container or anything else on the host. */
  private async checkPorts(id: string, cfg: ContainerNet): Promise<void> {
    const wanted = Object.entries(cfg.PortBindings).flatMap(([key, list]) =>
      list.filter((b) => b.HostPort && b.HostPort !== '0').map((b) => ({ key, proto: parsePortKey(key).proto, hostIp: b.HostIp || '0.0.0.0', hostPort: Number(b.HostPort) })));
    const seen = new Set<string>();
    for (const w of wanted) {
      const label = `${w.hostIp}:${w.hostPort}/${w.proto}`;
      if (seen.has(label)) throw new ConflictError(`Bind for ${label} failed: port is published twice by this container`);
      seen.add(label);
      for (const other of this.containers.values()) {
        if (other.Id === id) continue;
        const clash = (other.Ports ?? []).find((p) => p.proto === w.proto && p.hostPort === w.hostPort && (p.hostIp === w.hostIp || p.hostIp === '0.0.0.0' || w.hostIp === '0.0.0.0'));
        if (clash) throw new ConflictError(`Bind for ${label} failed: port is already allocated by container ${this.deps.nameOf(other.Id) ?? other.Id}`);
      }
      if (!(await portFree(w.proto, w.hostIp, w.hostPort))) throw new ConflictError(`Bind for ${label} failed: port is already in use on the host`);
    }
  }

  async save(cfg: ContainerNet): Promise<void> {
    await writeJsonAtomic(path.join(this.dir, 'containers', `${cfg.Id}.json`), cfg);
    this.containers.set(cfg.Id, cfg);
  }

  /**
   * Runtime state (endpoints, host ports) on the start path: replaced by rename but not fsynced,
   * which costs milliseconds per start; after a host crash no container runs anyway.
   */
  private async saveRuntime(cfg: ContainerNet): Promise<void> {
    const file = path.join(this.dir, 'containers', `${cfg.Id}.json`);
    const tmp = `${file}.${process.pid}.tmp`;
    await fs.promises.writeFile(tmp, JSON.stringify(cfg, null, 2), { mode: 0o600 });
    await fs.promises.rename(tmp, file);
  }

  /** The container is being removed. */
  async forget(id: string): Promise<void> {
    await this.detached(id).catch(() => undefined);
    this.containers.delete(id);
    await fs.promises.rm(path.join(this.dir, 'containers', `${id}.json`), { force: true });
  }

  private container(id: string): ContainerNet {
    const c = this.containers.get(id);
    if (!c) throw new NotFoundError(`container ${id} has no network settings`);
    return c;
  }

  /** Join a network (stopped containers only: the change applies at the next start). */
  async connect(ref: string, containerId: string, ep: { Aliases?: string[]; IPAMConfig?: { IPv4Address?: string } } = {}): Promise<void> {
    const net = this.get(ref);
    const c = this.container(containerId);
    if (this.deps.isRunning(containerId)) throw new ConflictError(`container ${this.deps.nameOf(containerId)} is running: berth connects stopped containers only (stop it, connect, start it)`);
    if (c.Mode === 'none' || c.Mode === 'host') throw new ConflictError(`container ${this.deps.nameOf(containerId)} uses network mode ${c.Mode} and cannot join networks`);
    if (net.Name in c.Networks) throw new ConflictError(`endpoint with name ${this.deps.nameOf(containerId)} already exists in network ${net.Name}`);
    c.Networks[net.Name] = this.endpointConfig(net, ep.Aliases ?? [], ep.IPAMConfig?.IPv4Address);
    await this.save(c);
  }

  async disconnect(ref: string, containerId: string): Promise<void> {
    const net = this.get(ref);
    const c = this.container(containerId);
    if (this.deps.isRunning(containerId)) throw new ConflictError(`container ${this.deps.nameOf(containerId)} is running: berth disconnects stopped containers only`);
    if (!(net.Name in c.Networks)) throw new NotFoundError(`container ${this.deps.nameOf(containerId)} is not connected to network ${net.Name}`);
    delete c.Networks[net.Name];
    if (c.Mode === net.Name) c.Mode = Object.keys(c.Networks)[0] ?? 'none';
    await this.save(c);
  }

  // ---- NetworkService: called by the network isolator -----------------------------------------

  async joins(containerId: string): Promise<NetworkJoin[]> {
    const c = this.containers.get(containerId);
    if (!c) return [];
    const joins: NetworkJoin[] = [];
    const names = Object.keys(c.Networks);
    this.joining.set(containerId, names);
    for (const [i, name] of names.entries()) {
      const net = this.byName(name);
      if (!net) throw new NotFoundError(`network ${name} not found (removed while the container was stopped?)`);
      await this.bridgeUp(net);
      const cname = this.deps.nameOf(containerId);
      const hostname = this.deps.hostnameOf(containerId);
      joins.push({
        network: net.Name,
        cniConfig: this.cniConfig(net),
        ifname: `eth${i}`,
        ip: c.Networks[name].IPv4Address,
        mac: c.Networks[name].MacAddress,
        hostNames: [...new Set([hostname, cname].filter((n): n is string => !!n))],
        dnsServer: net.Name === DEFAULT_NETWORK ? undefined : net.Gateway,
      });
    }
    return joins;
  }

  private async bridgeUp(net: NetworkRecord): Promise<void> {
    if (this.readyBridges.has(net.Bridge) && linkExists(net.Bridge)) return;
    const c = parseCidr(net.Subnet)!;
    await ensureBridge(net.Bridge, net.Gateway, c.len);
    this.readyBridges.add(net.Bridge);
  }

  async attached(containerId: string, endpoints: NetworkEndpoint[]): Promise<void> {
    const c = this.containers.get(containerId);
    this.joining.delete(containerId);
    if (!c) return;
    c.Endpoints = endpoints;
    c.Ports = [];
    try {
      for (const ep of endpoints) if (ep.network !== DEFAULT_NETWORK) await this.dnsUp(ep.network);
      await this.publish(c);
    } catch (err) {
      await this.detached(containerId).catch(() => undefined);
      throw err;
    }
    await this.saveRuntime(c);
  }

  private async dnsUp(network: string): Promise<void> {
    if (this.dns.has(network)) return;
    const net = this.byName(network);
    if (!net) return;
    const responder = new DnsResponder(net.Gateway, (name) => this.lookup(network, name));
    await responder.start();
    this.dns.set(network, responder);
  }

  /** Addresses of the containers on `network` known as `name` (name, alias or short id). */
  private lookup(network: string, name: string): string[] | undefined {
    const ips: string[] = [];
    for (const c of this.containers.values()) {
      const ep = c.Endpoints?.find((e) => e.network === network);
      if (!ep) continue;
      const names = [this.deps.nameOf(c.Id), c.Id.slice(0, 12), ...(c.Networks[network]?.Aliases ?? [])].filter(Boolean).map((n) => n!.toLowerCase());
      if (names.includes(name)) ips.push(ep.address.split('/')[0]);
    }
    return ips.length ? ips : undefined;
  }

  private async publish(c: ContainerNet): Promise<void> {
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

  async detached(containerId: string): Promise<void> {
    this.joining.delete(containerId);
    for (const p of this.proxies.get(containerId) ?? []) await p.close().catch(() => undefined);
    this.proxies.delete(containerId);
    const c = this.containers.get(containerId);
    if (c && (c.Endpoints || c.Ports)) {
      delete c.Endpoints;
      delete c.Ports;
      await this.saveRuntime(c).catch(() => undefined);
    }
    // Bridges stay until network rm or berthd's stop (see close()): the next start is quicker.
  }

  private inUse(network: string): boolean {
    for (const c of this.containers.values()) if (c.Endpoints?.some((e) => e.network === network)) return true;
    for (const list of this.joining.values()) if (list.includes(network)) return true;
    return false;
  }

  private async teardown(net: NetworkRecord): Promise<void> {
    await this.dns.get(net.Name)?.stop();
    this.dns.delete(net.Name);
    this.readyBridges.delete(net.Bridge);
    await deleteBridge(net.Bridge);
  }

  // ---- what inspect, ps and port show --------------------------------------------------------

  /** NetworkSettings of `docker inspect`. */
  settings(id: string) {
    const c = this.containers.get(id);
    const networks: Record<string, unknown> = {};
    const ports: Record<string, { HostIp: string; HostPort: string }[] | null> = {};
    if (c) {
      for (const [name, cfg] of Object.entries(c.Networks)) {
        const net = this.byName(name);
        const ep = c.Endpoints?.find((e) => e.network === name);
        const [ip, len] = ep ? ep.address.split('/') : ['', '0'];
        networks[name] = {
          IPAMConfig: cfg.IPv4Address ? { IPv4Address: cfg.IPv4Address } : null,
          Aliases: cfg.Aliases.length ? cfg.Aliases : null,
          NetworkID: net?.Id ?? '',
          EndpointID: ep ? endpointId(id, name) : '',
          Gateway: ep ? (ep.gateway ?? net?.Gateway ?? '') : '',
          IPAddress: ip,
          IPPrefixLen: Number(len),
          MacAddress: ep?.mac ?? '',
        };
      }
      for (const key of c.ExposedPorts) ports[key] = null;
      for (const key of Object.keys(c.PortBindings)) ports[key] = null;
      for (const p of c.Ports ?? []) (ports[`${p.containerPort}/${p.proto}`] ??= []).push({ HostIp: p.hostIp, HostPort: String(p.hostPort) });
    }
    const primary = c?.Endpoints?.[0];
    const [ip, len] = primary ? primary.address.split('/') : ['', '0'];
    return {
      Networks: networks,
      Ports: ports,
      IPAddress: ip,
      IPPrefixLen: Number(len),
      Gateway: primary?.gateway ?? (primary ? this.byName(primary.network)?.Gateway ?? '' : ''),
      MacAddress: primary?.mac ?? '',
    };
  }

  /** Ports of `GET /containers/json`. */
  summaryPorts(id: string): { IP?: string; PrivatePort: number; PublicPort?: number; Type: string }[] {
    const c = this.containers.get(id);
    if (!c) return [];
    const out: { IP?: string; PrivatePort: number; PublicPort?: number; Type: string }[] = (c.Ports ?? []).map((p) => ({ IP: p.hostIp, PrivatePort: p.containerPort, PublicPort: p.hostPort, Type: p.proto }));
    for (const key of c.ExposedPorts) {
      const { port, proto } = parsePortKey(key);
      if (!out.some((o) => o.PrivatePort === port && o.Type === proto)) out.push({ PrivatePort: port, Type: proto });
    }
    return out;
  }

  networkNames(id: string): string[] {
    return Object.keys(this.containers.get(id)?.Networks ?? {});
  }

  // ---- daemon lifecycle ----------------------------------------------------------------------

  /** After a berthd restart: running containers get their ports and DNS names back. */
  async recover(live: string[]): Promise<void> {
    const alive = new Set(live);
    for (const c of this.containers.values()) {
      if (!c.Endpoints) continue;
      if (!alive.has(c.Id)) continue; // its exit was handled: the isolator's cleanup detached it
      const endpoints = c.Endpoints;
      try {
        for (const name of new Set(endpoints.map((e) => e.network))) {
          const net = this.byName(name);
          if (net) await this.bridgeUp(net);
        }
        await this.attached(c.Id, endpoints);
      } catch (err) {
        this.deps.log.warn('could not restore the network of a running container', { container: c.Id, error: (err as Error).message });
      }
    }
    // Bridges of networks nobody uses any more (a crash between ADD and DEL) go.
    for (const net of this.records.values()) if (!this.inUse(net.Name) && linkExists(net.Bridge)) await this.teardown(net);
  }

  /**
   * berthd stops: listeners close; bridges nobody uses go (running containers keep theirs, and
   * the next berthd gives them their ports and DNS back).
   */
  async close(): Promise<void> {
    for (const list of this.proxies.values()) for (const p of list) await p.close().catch(() => undefined);
    this.proxies.clear();
    for (const d of this.dns.values()) await d.stop().catch(() => undefined);
    this.dns.clear();
    for (const net of this.records.values()) if (!this.inUse(net.Name)) await this.teardown(net).catch(() => undefined);
  }
}

function endpointId(containerId: string, network: string): string {
  return createHash('sha256').update(`${containerId}\0${network}`).digest('hex');
}
