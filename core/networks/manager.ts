/**
 * Networks: records (`<root>/networks/records/<id>.json`), per-container network settings
 * (`<root>/networks/containers/<id>.json`: networks joined, aliases, requested IPs, port
 * bindings, and while running the endpoints CNI made and the host ports in use), host-local IPAM
 * state (`<root>/networks/ipam/`), bridges, published ports (userland proxy) and the DNS
 * responder of each user-defined network. The container side (CNI ADD/DEL) is the network
 * isolator's (plugins/isolator-network), which calls this manager through the NetworkService contract.
 *
 * A network's bridge (and DNS responder) is made when its first container starts and stays while
 * berthd runs, so later starts skip that work; `network rm` and berthd's stop take unused bridges
 * away, so nothing stays on the host once the containers are gone.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConflictError, ForbiddenError, InvalidArgumentError, NotFoundError, UnavailableError } from '../contracts/errors';
import type { NetworkAttacher, NetworkEndpoint, NetworkJoin, NetworkService, RunningNetns } from '../contracts/network';
import type { Logger } from '../contracts/types';
import { ensureDir, readJson, writeJsonAtomic } from '../util/fs';
import { DnsResponder } from './dns';
import { bridgeReady, deleteBridge, ensureBridge, formatIPv4, formatIPv6, hostRoutes, inCidr6, linkNames, maskOf, overlaps, parseCidr, parseCidr6, parseIPv4, parseIPv6 } from './host';
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
  /** An IPv6 subnet and gateway when the network was made with EnableIPv6 and an IPv6 pool. */
  Subnet6?: string;
  Gateway6?: string;
  /** IPAM.Config as the client gave it (normalised), shown back by inspect. */
  IPAMConfig?: IpamPool[];
  Options?: Record<string, string>;
  /** Internal as asked at create. berth routes no container traffic off the host either way. */
  Internal?: boolean;
  Labels: Record<string, string>;
}

export interface IpamPool {
  Subnet: string;
  IPRange?: string;
  Gateway?: string;
  AuxiliaryAddresses?: Record<string, string>;
}

/** What a container asked for on one network (Docker's EndpointSettings, the configured part). */
export interface EndpointConfig {
  Aliases: string[];
  IPv4Address?: string;
  IPv6Address?: string;
  LinkLocalIPs?: string[];
  MacAddress?: string;
  /** `container:alias` pairs: the alias resolves to that container for this one only. */
  Links?: string[];
  DriverOpts?: Record<string, string>;
}

/** The endpoint part of a create or connect request. */
export interface EndpointRequest {
  Aliases?: string[] | null;
  IPAMConfig?: { IPv4Address?: string; IPv6Address?: string; LinkLocalIPs?: string[] | null } | null;
  MacAddress?: string;
  Links?: string[] | null;
  DriverOpts?: Record<string, string> | null;
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
  /** HostConfig.NetworkMode, with 'default' read as 'bridge'; it stays when the container leaves that network. */
  Mode: string;
  /** Networks joined, in join order (the first is the primary one: eth0, published ports). */
  Networks: Record<string, EndpointConfig>;
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
  /** The network namespace of a running container (its init's pid), for connect/disconnect. */
  running: (id: string) => RunningNetns | undefined;
}

export const DEFAULT_NETWORK = 'bridge';
const DEFAULT_BRIDGE_DEVICE = 'berth0';
const DEFAULT_ROOT = '/var/lib/berth';
/** berth's address pool: /24s out of 10.207.0.0/16, skipping any that overlaps a host route. */
const POOL_BASE = parseIPv4('10.207.0.0')!;
const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
/** dockerd takes any network name, spaces included; berth refuses control characters and slashes (names end up in paths and logs). */
const NETWORK_NAME = /^[^\x00-\x1f\x7f/]{1,128}$/;
const MAC = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;
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
  private attacher?: NetworkAttacher;

  constructor(private readonly deps: NetworkManagerDeps) {
    this.dir = path.join(deps.root, 'networks');
  }

  useAttacher(attacher: NetworkAttacher): void {
    this.attacher = attacher;
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
    throw new UnavailableError('no free subnet left in 10.207.0.0/16 for a new network: pass --subnet');
  }

  /** POST /networks/create (Docker's body: Name, Driver, EnableIPv6, IPAM {Driver, Config[{Subnet, IPRange, Gateway, AuxiliaryAddresses}]}, Options, Labels). */
  async create(req: {
    Name?: string;
    Driver?: string;
    EnableIPv6?: boolean;
    IPAM?: { Driver?: string; Config?: { Subnet?: string; IPRange?: string; Gateway?: string; AuxiliaryAddresses?: Record<string, string> }[] | null } | null;
    Options?: Record<string, string> | null;
    Labels?: Record<string, string> | null;
    Internal?: boolean;
    CheckDuplicate?: boolean;
  }): Promise<{ Id: string; Warning: string }> {
    const name = req?.Name;
    if (!name || !NETWORK_NAME.test(name)) throw new InvalidArgumentError(`invalid network name ${JSON.stringify(name ?? '')}: expected 1 to 128 characters, no slash or control characters`);
    if (PREDEFINED.has(name)) throw new ForbiddenError(`operation is not permitted on predefined ${name} network`);
    if (this.byName(name)) throw new ConflictError(`network with name ${name} already exists`);
    if (req.Driver && req.Driver !== 'bridge') throw new InvalidArgumentError(`network driver ${JSON.stringify(req.Driver)} is not supported (bridge)`);
    if (req.IPAM?.Driver && req.IPAM.Driver !== 'default') throw new InvalidArgumentError(`IPAM driver ${JSON.stringify(req.IPAM.Driver)} is not supported (default)`);
    const pools = req.IPAM?.Config ?? [];
    const v4 = pools.filter((p) => p.Subnet && !p.Subnet.includes(':'));
    const v6 = pools.filter((p) => p.Subnet?.includes(':'));
    if (pools.some((p) => !p.Subnet)) throw new InvalidArgumentError('IPAM.Config: every pool needs a Subnet');
    if (v4.length > 1 || v6.length > 1) throw new InvalidArgumentError('IPAM.Config: berth takes one IPv4 and one IPv6 pool per network');
    const pool4 = v4[0];
    let subnet: { network: number; len: number };
    if (pool4) {
      const parsed = parseCidr(pool4.Subnet!);
      if (!parsed) throw new InvalidArgumentError(`invalid subnet ${JSON.stringify(pool4.Subnet)}: expected an IPv4 CIDR with a prefix length from 8 to 30`);
      subnet = parsed;
      const mine: [number, number] = [parsed.network, parsed.len];
      const clash = this.list().find((r) => {
        const c = parseCidr(r.Subnet)!;
        return overlaps([c.network, c.len], mine);
      });
      if (clash) throw new ConflictError(`subnet ${pool4.Subnet} overlaps network ${clash.Name} (${clash.Subnet})`);
      const route = (await hostRoutes()).find((r) => r[1] > 0 && overlaps(r, mine));
      if (route) throw new ConflictError(`subnet ${pool4.Subnet} overlaps a route of the host (${formatIPv4(route[0])}/${route[1]})`);
      if (pool4.IPRange) {
        const range = parseCidr(pool4.IPRange);
        if (!range || range.len < subnet.len || ((range.network & maskOf(subnet.len)) >>> 0) !== subnet.network) {
          throw new InvalidArgumentError(`invalid IPRange ${JSON.stringify(pool4.IPRange)}: not a range inside ${pool4.Subnet}`);
        }
      }
    } else {
      subnet = await this.freeSubnet();
    }
    const inSubnet = (addr: string) => {
      const g = parseIPv4(addr);
      return g !== undefined && ((g & maskOf(subnet.len)) >>> 0) === subnet.network && g !== subnet.network;
    };
    if (pool4?.Gateway && !inSubnet(pool4.Gateway)) {
      throw new InvalidArgumentError(`invalid gateway ${JSON.stringify(pool4.Gateway)}: not a host address in ${formatIPv4(subnet.network)}/${subnet.len}`);
    }
    for (const [k, a] of Object.entries(pool4?.AuxiliaryAddresses ?? {})) {
      if (!inSubnet(a)) throw new InvalidArgumentError(`invalid auxiliary address ${k}=${JSON.stringify(a)}: not in ${formatIPv4(subnet.network)}/${subnet.len}`);
    }
    const bridgeName = req.Options?.['com.docker.network.bridge.name'];
    if (bridgeName !== undefined && (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,14}$/.test(bridgeName) || this.list().some((r) => r.Bridge === bridgeName))) {
      throw new InvalidArgumentError(`invalid com.docker.network.bridge.name ${JSON.stringify(bridgeName)}: expected an unused interface name of at most 15 characters`);
    }
    const rec = this.newRecord(name, subnet, pool4?.Gateway, req.Labels ?? {}, bridgeName);
    const pool6 = v6[0];
    if (pool6) {
      const parsed = parseCidr6(pool6.Subnet!);
      if (!parsed) throw new InvalidArgumentError(`invalid subnet ${JSON.stringify(pool6.Subnet)}: expected an IPv6 CIDR with a prefix length from 16 to 120`);
      const clash = this.list().find((r) => r.Subnet6 && parseCidr6(r.Subnet6)!.network === parsed.network);
      if (clash) throw new ConflictError(`subnet ${pool6.Subnet} overlaps network ${clash.Name} (${clash.Subnet6})`);
      let gateway = parsed.network + 1n;
      if (pool6.Gateway) {
        const g = parseIPv6(pool6.Gateway);
        if (g === undefined || !inCidr6(g, parsed) || g === parsed.network) throw new InvalidArgumentError(`invalid gateway ${JSON.stringify(pool6.Gateway)}: not a host address in ${pool6.Subnet}`);
        gateway = g;
      }
      // Without EnableIPv6, dockerd keeps and shows the pool but hands out no IPv6 addresses.
      if (req.EnableIPv6) {
        rec.Subnet6 = `${formatIPv6(parsed.network)}/${parsed.len}`;
        rec.Gateway6 = formatIPv6(gateway);
      }
    }
    if (pools.length) {
      rec.IPAMConfig = pools.map((p) => ({
        Subnet: p.Subnet!,
        ...(p.IPRange ? { IPRange: p.IPRange } : {}),
        ...(p.Gateway ? { Gateway: p.Gateway } : {}),
        ...(p.AuxiliaryAddresses && Object.keys(p.AuxiliaryAddresses).length ? { AuxiliaryAddresses: p.AuxiliaryAddresses } : {}),
      }));
    }
    if (req.Options && Object.keys(req.Options).length) rec.Options = req.Options;
    if (req.Internal) rec.Internal = true;
    await this.saveRecord(rec);
    await this.reserveAuxiliary(rec);
    return { Id: rec.Id, Warning: '' };
  }

  /** Containers configured on a network (running or not). */
  private usersOf(name: string): ContainerNet[] {
    return [...this.containers.values()].filter((c) => name in c.Networks);
  }

  async remove(ref: string): Promise<void> {
    const rec = this.get(ref);
    if (rec.Name === DEFAULT_NETWORK) throw new ForbiddenError(`${rec.Name} is a pre-defined network and cannot be removed`);
    const users = this.usersOf(rec.Name);
    if (users.length) {
      const names = users.map((u) => this.deps.nameOf(u.Id) ?? u.Id.slice(0, 12));
      throw new ConflictError(`error while removing network: network ${rec.Name} id ${rec.Id} is in use by container(s) ${names.join(', ')}`);
    }
    await this.teardown(rec);
    await fs.promises.rm(path.join(this.dir, 'records', `${rec.Id}.json`), { force: true });
    await fs.promises.rm(path.join(this.ipamDir, cniName(rec)), { recursive: true, force: true });
    this.records.delete(rec.Id);
  }

  /** Docker's network inspect shape. */
  inspect(ref: string) {
    const rec = this.get(ref);
    const containers: Record<string, unknown> = {};
    for (const c of this.usersOf(rec.Name)) {
      const ep = c.Endpoints?.find((e) => e.network === rec.Name);
      if (!ep) continue;
      containers[c.Id] = { Name: this.deps.nameOf(c.Id) ?? '', EndpointID: endpointId(c.Id, rec.Name), MacAddress: ep.mac ?? '', IPv4Address: ep.address, IPv6Address: ep.address6 ?? '' };
    }
    // The IPv4 subnet berth picked comes first when the client gave only an IPv6 pool, as in dockerd.
    const given = rec.IPAMConfig ?? [];
    const config = given.some((p) => !p.Subnet.includes(':')) ? given : [{ Subnet: rec.Subnet, Gateway: rec.Gateway }, ...given];
    return {
      Name: rec.Name,
      Id: rec.Id,
      Created: rec.Created,
      Scope: rec.Scope,
      Driver: rec.Driver,
      EnableIPv6: !!rec.Subnet6,
      // IPAM is host-local through CNI; Docker clients know the built-in allocator as "default".
      IPAM: { Driver: 'default', Options: null, Config: config },
      // As asked (clients such as docker-compose compare it with their file). Either way containers
      // reach only their subnet and the host's gateway address: berth gives them no route out.
      Internal: rec.Internal === true,
      Attachable: false,
      Ingress: false,
      ConfigFrom: { Network: '' },
      ConfigOnly: false,
      Containers: containers,
      // As dockerd: the default network shows its bridge; others show the options they were made with
      // (docker-compose recreates a network whose options differ from its file). A user network's
      // bridge is br-<first 12 of the id> unless com.docker.network.bridge.name chose it.
      Options: rec.Name === DEFAULT_NETWORK ? { 'com.docker.network.bridge.default_bridge': 'true', 'com.docker.network.bridge.name': rec.Bridge } : (rec.Options ?? {}),
      Labels: rec.Labels,
    };
  }

  /** The CNI network configuration list berth runs for a container on a network. */
  cniConfig(rec: NetworkRecord, ep?: EndpointConfig): Record<string, unknown> {
    const ranges: Record<string, string>[][] = [[{ subnet: rec.Subnet, gateway: rec.Gateway, ...this.range4(rec) }]];
    if (rec.Subnet6) ranges.push([{ subnet: rec.Subnet6, gateway: rec.Gateway6! }]);
    const ips = [ep?.IPv4Address, rec.Subnet6 ? ep?.IPv6Address : undefined].filter((a): a is string => !!a);
    return {
      cniVersion: '1.0.0',
      name: cniName(rec),
      plugins: [
        {
          type: 'bridge',
          bridge: rec.Bridge,
          // berth sets the gateway address itself and gives containers no default route.
          isGateway: false,
          ipMasq: false,
          ...(ep?.MacAddress ? { runtimeConfig: { mac: ep.MacAddress } } : {}),
          ...(ips.length ? { args: { cni: { ips } } } : {}),
          ipam: { type: 'host-local', ranges, dataDir: this.ipamDir },
        },
      ],
    };
  }

  /** host-local's rangeStart/rangeEnd for the network's IPv4 IPRange, if it has one. */
  private range4(rec: NetworkRecord): Record<string, string> {
    const given = rec.IPAMConfig?.find((p) => !p.Subnet.includes(':'))?.IPRange;
    if (!given) return {};
    const range = parseCidr(given)!;
    const subnet = parseCidr(rec.Subnet)!;
    const first = Math.max(range.network, subnet.network + 1);
    const last = Math.min((range.network | ~maskOf(range.len)) >>> 0, ((subnet.network | ~maskOf(subnet.len)) >>> 0) - 1);
    return { rangeStart: formatIPv4(first), rangeEnd: formatIPv4(last) };
  }

  /** Auxiliary addresses are never handed out: host-local skips addresses it has a reservation file for. */
  private async reserveAuxiliary(rec: NetworkRecord): Promise<void> {
    const aux = rec.IPAMConfig?.flatMap((p) => Object.values(p.AuxiliaryAddresses ?? {})) ?? [];
    if (!aux.length) return;
    const dir = path.join(this.ipamDir, cniName(rec));
    await ensureDir(dir);
    for (const a of aux) await fs.promises.writeFile(path.join(dir, a), 'auxiliary', { flag: 'w', mode: 0o600 });
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
    endpoints: Record<string, EndpointRequest> | undefined,
    exposedPorts: string[],
    containerMac?: string,
  ): Promise<ContainerNet> {
    const rawMode = (hostConfig.NetworkMode as string | undefined) || 'default';
    const mode = rawMode === 'default' ? DEFAULT_NETWORK : rawMode;
    const cfg: ContainerNet = { Id: id, Mode: mode, Networks: {}, PortBindings: {}, PublishAllPorts: hostConfig.PublishAllPorts === true, ExposedPorts: [] };
    // An endpoint must name a network that exists (dockerd: 404), even one other than NetworkMode.
    for (const name of Object.keys(endpoints ?? {})) if (mode !== 'host' && !this.find(name)) throw new NotFoundError(`network ${name} not found`);
    // container:<id> shares that container's network namespace: no networks of its own.
    if (mode !== 'none' && mode !== 'host' && !mode.startsWith('container:')) {
      const net = this.find(mode);
      if (!net) throw new NotFoundError(`network ${mode} not found`);
      for (const key of Object.keys(endpoints ?? {})) {
        if (key !== mode && key !== rawMode && key !== net.Id && !this.find(key)) throw new NotFoundError(`network ${key} not found`);
      }
      const ep = endpoints?.[mode] ?? endpoints?.[rawMode] ?? endpoints?.[net.Id];
      cfg.Networks[net.Name] = this.endpointConfig(net, ep ?? {}, containerMac);
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

  /** Check and normalise what a container asks for on a network (create or connect). */
  private endpointConfig(net: NetworkRecord, req: EndpointRequest, containerMac?: string, self?: string): EndpointConfig {
    const aliases = req.Aliases ?? [];
    if (aliases.length && net.Name === DEFAULT_NETWORK) throw new InvalidArgumentError('network-scoped aliases are only supported for user-defined networks');
    for (const a of aliases) if (!NAME.test(a)) throw new InvalidArgumentError(`invalid network alias ${JSON.stringify(a)}`);
    const cfg: EndpointConfig = { Aliases: aliases };
    const holder = (key: 'IPv4Address' | 'IPv6Address', ip: string) =>
      [...this.containers.values()].find((o) => o.Id !== self && o.Networks[net.Name]?.[key] === ip);
    const ip4 = req.IPAMConfig?.IPv4Address;
    if (ip4) {
      if (net.Name === DEFAULT_NETWORK) throw new InvalidArgumentError('user specified IP address is supported on user defined networks only');
      const n = parseIPv4(ip4);
      const c = parseCidr(net.Subnet)!;
      const broadcast = (c.network | ~maskOf(c.len)) >>> 0;
      if (n === undefined || ((n & maskOf(c.len)) >>> 0) !== c.network || n === c.network || n === broadcast || ip4 === net.Gateway) {
        throw new InvalidArgumentError(`invalid IP address ${JSON.stringify(ip4)} for network ${net.Name}: not a free host address in ${net.Subnet}`);
      }
      const other = holder('IPv4Address', ip4);
      if (other) throw new ConflictError(`address ${ip4} on network ${net.Name} is already assigned to container ${this.deps.nameOf(other.Id) ?? other.Id}`);
      cfg.IPv4Address = ip4;
    }
    const ip6 = req.IPAMConfig?.IPv6Address;
    if (ip6) {
      const n = parseIPv6(ip6);
      // A pool given without EnableIPv6 takes the address into IPAMConfig only, as dockerd does.
      const subnet6 = net.Subnet6 ?? net.IPAMConfig?.find((p) => p.Subnet.includes(':'))?.Subnet;
      const c = subnet6 ? parseCidr6(subnet6) : undefined;
      if (!c) throw new InvalidArgumentError(`invalid IPv6 address ${JSON.stringify(ip6)}: network ${net.Name} has no IPv6 subnet (create it with --ipv6 --subnet)`);
      if (n === undefined || !inCidr6(n, c) || n === c.network || formatIPv6(n) === net.Gateway6) {
        throw new InvalidArgumentError(`invalid IPv6 address ${JSON.stringify(ip6)} for network ${net.Name}: not a host address in ${subnet6}`);
      }
      const other = holder('IPv6Address', formatIPv6(n));
      if (other) throw new ConflictError(`address ${ip6} on network ${net.Name} is already assigned to container ${this.deps.nameOf(other.Id) ?? other.Id}`);
      cfg.IPv6Address = formatIPv6(n);
    }
    const lla = req.IPAMConfig?.LinkLocalIPs ?? [];
    if (lla.length) {
      // Kept and shown as dockerd does; berth adds no link-local addresses to the interface.
      for (const a of lla) if (parseIPv4(a) === undefined && parseIPv6(a) === undefined) throw new InvalidArgumentError(`invalid link-local IP ${JSON.stringify(a)}`);
      cfg.LinkLocalIPs = lla;
    }
    const mac = req.MacAddress || containerMac;
    if (mac) {
      if (!MAC.test(mac)) throw new InvalidArgumentError(`invalid MAC address ${JSON.stringify(mac)}: expected six colon-separated hex bytes`);
      cfg.MacAddress = mac.toLowerCase();
    }
    const links = req.Links ?? [];
    for (const l of links) if (!/^[^:]+(:[^:]+)?$/.test(l)) throw new InvalidArgumentError(`invalid link ${JSON.stringify(l)}: expected CONTAINER[:ALIAS]`);
    if (links.length) cfg.Links = links.map((l) => (l.includes(':') ? l : `${l}:${l}`));
    if (req.DriverOpts && Object.keys(req.DriverOpts).length) cfg.DriverOpts = req.DriverOpts;
    return cfg;
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

  /**
   * Join a network. A stopped container joins at its next start; a running one now, through the
   * network isolator's hot-plug (CNI ADD in its namespace), as dockerd does.
   */
  async connect(ref: string, containerId: string, req: EndpointRequest = {}): Promise<void> {
    const net = this.get(ref);
    const c = this.container(containerId);
    const name = this.deps.nameOf(containerId);
    if (c.Mode === 'none' || c.Mode === 'host') throw new ConflictError(`container ${name} uses network mode ${c.Mode} and cannot join networks`);
    if (net.Name in c.Networks) throw new ConflictError(`endpoint with name ${name} already exists in network ${net.Name}`);
    const ep = this.endpointConfig(net, req, undefined, containerId);
    const running = this.deps.running(containerId);
    if (running) {
      if (!this.attacher) throw new ConflictError(`container ${name} is running and the network isolator offers no hot-plug: stop it, connect, start it`);
      await this.bridgeUp(net);
      const used = new Set((c.Endpoints ?? []).map((e) => e.ifname));
      let i = 0;
      while (used.has(`eth${i}`)) i++;
      const endpoint = await this.attacher.join(running, this.joinFor(c, net, ep, `eth${i}`));
      c.Networks[net.Name] = ep;
      c.Endpoints = [...(c.Endpoints ?? []), endpoint];
      if (net.Name !== DEFAULT_NETWORK) await this.dnsUp(net.Name);
      if (c.Endpoints.length === 1) await this.publish(c);
      await this.save(c);
      return;
    }
    c.Networks[net.Name] = ep;
    await this.save(c);
  }

  async disconnect(ref: string, containerId: string): Promise<void> {
    const net = this.get(ref);
    const c = this.container(containerId);
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
        for (const p of this.proxies.get(containerId) ?? []) await p.close().catch(() => undefined);
        this.proxies.delete(containerId);
        c.Ports = [];
        await this.publish(c);
      }
    }
    // NetworkMode stays as created (docker-compose disconnects and reconnects a new container).
    delete c.Networks[net.Name];
    await this.save(c);
  }

  private joinFor(c: ContainerNet, net: NetworkRecord, ep: EndpointConfig, ifname: string): NetworkJoin {
    const cname = this.deps.nameOf(c.Id);
    const hostname = this.deps.hostnameOf(c.Id);
    return {
      network: net.Name,
      cniConfig: this.cniConfig(net, ep),
      ifname,
      hostNames: [...new Set([hostname, cname].filter((n): n is string => !!n))],
      dnsServer: net.Name === DEFAULT_NETWORK ? undefined : net.Gateway,
    };
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
      joins.push(this.joinFor(c, net, c.Networks[name], `eth${i}`));
    }
    return joins;
  }

  private async bridgeUp(net: NetworkRecord): Promise<void> {
    if (this.readyBridges.has(net.Bridge) && bridgeReady(net.Bridge)) return;
    const c = parseCidr(net.Subnet)!;
    const c6 = net.Subnet6 ? parseCidr6(net.Subnet6) : undefined;
    await ensureBridge(net.Bridge, net.Gateway, c.len, c6 ? { address: net.Gateway6!, len: c6.len } : undefined);
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
    const responder = new DnsResponder(net.Gateway, (name, from) => this.lookup(network, name, from));
    await responder.start();
    this.dns.set(network, responder);
  }

  /**
   * Addresses of the containers on `network` known as `name` (name, alias or short id, also as
   * `name.network`), or as a link alias of the asking container (`from`: its address).
   */
  private lookup(network: string, name: string, from?: string): string[] | undefined {
    const suffix = `.${network.toLowerCase()}`;
    const wanted = name.endsWith(suffix) ? name.slice(0, -suffix.length) : name;
    const onNetwork = [...this.containers.values()].filter((c) => c.Endpoints?.some((e) => e.network === network));
    const addressOf = (c: ContainerNet) => c.Endpoints!.find((e) => e.network === network)!.address.split('/')[0];
    const asker = from ? onNetwork.find((c) => addressOf(c) === from) : undefined;
    const link = asker?.Networks[network]?.Links?.find((l) => l.split(':')[1].toLowerCase() === wanted);
    const target = link ? link.split(':')[0].toLowerCase() : wanted;
    const ips: string[] = [];
    for (const c of onNetwork) {
      const names = [this.deps.nameOf(c.Id), c.Id.slice(0, 12), ...(c.Networks[network]?.Aliases ?? [])].filter(Boolean).map((n) => n!.toLowerCase());
      if (names.includes(target)) ips.push(addressOf(c));
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
        const [ip6, len6] = ep?.address6 ? ep.address6.split('/') : ['', '0'];
        const ipam = { ...(cfg.IPv4Address ? { IPv4Address: cfg.IPv4Address } : {}), ...(cfg.IPv6Address ? { IPv6Address: cfg.IPv6Address } : {}), ...(cfg.LinkLocalIPs ? { LinkLocalIPs: cfg.LinkLocalIPs } : {}) };
        networks[name] = {
          IPAMConfig: Object.keys(ipam).length ? ipam : null,
          Links: cfg.Links ?? null,
          Aliases: cfg.Aliases.length ? cfg.Aliases : null,
          NetworkID: net?.Id ?? '',
          EndpointID: ep ? endpointId(id, name) : '',
          Gateway: ep ? (ep.gateway ?? net?.Gateway ?? '') : '',
          IPAddress: ip,
          IPPrefixLen: Number(len),
          IPv6Gateway: ep?.address6 ? (net?.Gateway6 ?? '') : '',
          GlobalIPv6Address: ip6,
          GlobalIPv6PrefixLen: Number(len6),
          MacAddress: ep?.mac ?? cfg.MacAddress ?? '',
          DriverOpts: cfg.DriverOpts ?? null,
        };
      }
      for (const key of c.ExposedPorts) ports[key] = null;
      for (const key of Object.keys(c.PortBindings)) ports[key] = null;
      for (const p of c.Ports ?? []) (ports[`${p.containerPort}/${p.proto}`] ??= []).push({ HostIp: p.hostIp, HostPort: String(p.hostPort) });
    }
    const primary = c?.Endpoints?.[0];
    const [ip, len] = primary ? primary.address.split('/') : ['', '0'];
    const [ip6, len6] = primary?.address6 ? primary.address6.split('/') : ['', '0'];
    return {
      Networks: networks,
      Ports: ports,
      IPAddress: ip,
      IPPrefixLen: Number(len),
      Gateway: primary?.gateway ?? (primary ? this.byName(primary.network)?.Gateway ?? '' : ''),
      GlobalIPv6Address: ip6,
      GlobalIPv6PrefixLen: Number(len6),
      IPv6Gateway: primary?.address6 ? (this.byName(primary.network)?.Gateway6 ?? '') : '',
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
    const links = await linkNames().catch(() => new Set<string>());
    for (const net of this.records.values()) if (!this.inUse(net.Name) && links.has(net.Bridge)) await this.teardown(net);
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
    const links = await linkNames().catch(() => new Set<string>());
    for (const net of this.records.values()) if (!this.inUse(net.Name) && links.has(net.Bridge)) await this.teardown(net).catch(() => undefined);
  }
}

/** The CNI network name (host-local's state folder): the berth network's name where it is a safe file name. */
function cniName(rec: NetworkRecord): string {
  return NAME.test(rec.Name) ? `berth-${rec.Name}` : `berth-${rec.Id.slice(0, 12)}`;
}

function endpointId(containerId: string, network: string): string {
  return createHash('sha256').update(`${containerId}\0${network}`).digest('hex');
}
