/**
 * IPAM: berth's subnet pool (/24s of 10.207.0.0/16 clear of the host's routes), the pools a
 * client gives at network create (subnet, IPRange, gateway, auxiliary addresses, an IPv6 pool),
 * and the fixed addresses a container asks for. Addresses are handed out by CNI's host-local
 * plugin, whose state is `<root>/networks/ipam/<cni name>/` (cni-config.ts).
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConflictError, InvalidArgumentError, UnavailableError } from '../contracts/errors';
import { ensureDir } from '../util/fs';
import { formatIPv4, formatIPv6, hostRoutes, inCidr6, maskOf, overlaps, parseCidr, parseCidr6, parseIPv4, parseIPv6 } from './host';
import { type ContainerNet, type EndpointRequest, type NetworkRecord, DEFAULT_NETWORK, cniName } from './records';
import type { NetworkStore } from './store';

const DEFAULT_ROOT = '/var/lib/berth';
const DEFAULT_BRIDGE_DEVICE = 'berth0';
/** berth's address pool: /24s out of 10.207.0.0/16, skipping any that overlaps a host route. */
const POOL_BASE = parseIPv4('10.207.0.0')!;

/** One entry of IPAM.Config in a create request. */
export interface IpamPoolRequest {
  Subnet?: string;
  IPRange?: string;
  Gateway?: string;
  AuxiliaryAddresses?: Record<string, string>;
}

export interface Subnet4 {
  network: number;
  len: number;
}

export class Ipam {
  constructor(
    private readonly root: string,
    private readonly store: NetworkStore,
  ) {}

  /**
   * berthd on the standard root owns berth0; a berthd on another root (tests, a second instance)
   * gets a device named after its root, so two daemons never share a bridge.
   */
  defaultBridgeDevice(): string {
    return this.root === DEFAULT_ROOT ? DEFAULT_BRIDGE_DEVICE : `berth-${this.rootHash.toString(16).padStart(8, '0')}`;
  }

  private get rootHash(): number {
    return createHash('sha256').update(this.root).digest().readUInt32BE(0);
  }

  private taken(): [number, number][] {
    return this.store.list().map((r) => {
      const c = parseCidr(r.Subnet)!;
      return [c.network, c.len];
    });
  }

  /**
   * A /24 of berth's pool clear of the host's routes and of this daemon's networks. The search
   * starts at an offset taken from the root, so daemons on other roots pick other subnets.
   */
  async freeSubnet(): Promise<Subnet4> {
    const busy = [...(await hostRoutes()).filter(([, len]) => len > 0), ...this.taken()];
    const start = this.root === DEFAULT_ROOT ? 0 : this.rootHash % 256;
    for (let n = 0; n < 256; n++) {
      const i = (start + n) % 256;
      const candidate: [number, number] = [POOL_BASE + i * 256, 24];
      if (!busy.some((b) => overlaps(b, candidate))) return { network: candidate[0], len: 24 };
    }
    throw new UnavailableError('no free subnet left in 10.207.0.0/16 for a new network: pass --subnet');
  }

  /** A new network's IPv4 subnet: the pool given (checked against the other networks and the host's routes) or a free one. */
  async subnet4(pool4: IpamPoolRequest | undefined): Promise<Subnet4> {
    let subnet: Subnet4;
    if (pool4) {
      const parsed = parseCidr(pool4.Subnet!);
      if (!parsed) throw new InvalidArgumentError(`invalid subnet ${JSON.stringify(pool4.Subnet)}: expected an IPv4 CIDR with a prefix length from 8 to 30`);
      subnet = parsed;
      const mine: [number, number] = [parsed.network, parsed.len];
      const clash = this.store.list().find((r) => {
        const c = parseCidr(r.Subnet)!;
        return overlaps([c.network, c.len], mine);
      });
      if (clash) throw new ConflictError(`subnet ${pool4.Subnet} overlaps network ${clash.Name} (${clash.Subnet})`);
      const route = (await hostRoutes()).find((r) => r[1] > 0 && overlaps(r, mine));
      if (route) throw new ConflictError(`subnet ${pool4.Subnet} overlaps a route of the host (${formatIPv4(route[0])}/${route[1]})`);
      if (pool4.IPRange) {
        const range = parseCidr(pool4.IPRange);
        if (!range || range.len < subnet.len || (range.network & maskOf(subnet.len)) >>> 0 !== subnet.network) {
          throw new InvalidArgumentError(`invalid IPRange ${JSON.stringify(pool4.IPRange)}: not a range inside ${pool4.Subnet}`);
        }
      }
    } else {
      subnet = await this.freeSubnet();
    }
    const inSubnet = (addr: string) => {
      const g = parseIPv4(addr);
      return g !== undefined && (g & maskOf(subnet.len)) >>> 0 === subnet.network && g !== subnet.network;
    };
    if (pool4?.Gateway && !inSubnet(pool4.Gateway)) {
      throw new InvalidArgumentError(`invalid gateway ${JSON.stringify(pool4.Gateway)}: not a host address in ${formatIPv4(subnet.network)}/${subnet.len}`);
    }
    for (const [k, a] of Object.entries(pool4?.AuxiliaryAddresses ?? {})) {
      if (!inSubnet(a)) throw new InvalidArgumentError(`invalid auxiliary address ${k}=${JSON.stringify(a)}: not in ${formatIPv4(subnet.network)}/${subnet.len}`);
    }
    return subnet;
  }

  /**
   * A new network's IPv6 subnet and gateway. The pool is checked either way, but without
   * EnableIPv6 dockerd keeps and shows the pool yet hands out no IPv6 addresses: then undefined.
   */
  subnet6(pool6: IpamPoolRequest, enableIPv6: boolean): { Subnet6: string; Gateway6: string } | undefined {
    const parsed = parseCidr6(pool6.Subnet!);
    if (!parsed) throw new InvalidArgumentError(`invalid subnet ${JSON.stringify(pool6.Subnet)}: expected an IPv6 CIDR with a prefix length from 16 to 120`);
    const clash = this.store.list().find((r) => r.Subnet6 && parseCidr6(r.Subnet6)!.network === parsed.network);
    if (clash) throw new ConflictError(`subnet ${pool6.Subnet} overlaps network ${clash.Name} (${clash.Subnet6})`);
    let gateway = parsed.network + 1n;
    if (pool6.Gateway) {
      const g = parseIPv6(pool6.Gateway);
      if (g === undefined || !inCidr6(g, parsed) || g === parsed.network) throw new InvalidArgumentError(`invalid gateway ${JSON.stringify(pool6.Gateway)}: not a host address in ${pool6.Subnet}`);
      gateway = g;
    }
    return enableIPv6 ? { Subnet6: `${formatIPv6(parsed.network)}/${parsed.len}`, Gateway6: formatIPv6(gateway) } : undefined;
  }

  /** Auxiliary addresses are never handed out: host-local skips addresses it has a reservation file for. */
  async reserveAuxiliary(rec: NetworkRecord): Promise<void> {
    const aux = rec.IPAMConfig?.flatMap((p) => Object.values(p.AuxiliaryAddresses ?? {})) ?? [];
    if (!aux.length) return;
    const dir = path.join(this.store.ipamDir, cniName(rec));
    await ensureDir(dir);
    for (const a of aux) await fs.promises.writeFile(path.join(dir, a), 'auxiliary', { flag: 'w', mode: 0o600 });
  }

  /** The network is removed: host-local's state for it goes. */
  async release(rec: NetworkRecord): Promise<void> {
    await fs.promises.rm(path.join(this.store.ipamDir, cniName(rec)), { recursive: true, force: true });
  }

  /**
   * The fixed addresses a container asks for on a network (create or connect), each a free host
   * address of the network's subnet; `self` is the asking container (its own addresses are free).
   */
  requestedAddresses(net: NetworkRecord, req: EndpointRequest, nameOf: (id: string) => string | undefined, self?: string): { IPv4Address?: string; IPv6Address?: string } {
    const out: { IPv4Address?: string; IPv6Address?: string } = {};
    const holder = (key: 'IPv4Address' | 'IPv6Address', ip: string): ContainerNet | undefined => this.store.allContainers().find((o) => o.Id !== self && o.Networks[net.Name]?.[key] === ip);
    const ip4 = req.IPAMConfig?.IPv4Address;
    if (ip4) {
      if (net.Name === DEFAULT_NETWORK) throw new InvalidArgumentError('user specified IP address is supported on user defined networks only');
      const n = parseIPv4(ip4);
      const c = parseCidr(net.Subnet)!;
      const broadcast = (c.network | ~maskOf(c.len)) >>> 0;
      if (n === undefined || (n & maskOf(c.len)) >>> 0 !== c.network || n === c.network || n === broadcast || ip4 === net.Gateway) {
        throw new InvalidArgumentError(`invalid IP address ${JSON.stringify(ip4)} for network ${net.Name}: not a free host address in ${net.Subnet}`);
      }
      const other = holder('IPv4Address', ip4);
      if (other) throw new ConflictError(`address ${ip4} on network ${net.Name} is already assigned to container ${nameOf(other.Id) ?? other.Id}`);
      out.IPv4Address = ip4;
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
      if (other) throw new ConflictError(`address ${ip6} on network ${net.Name} is already assigned to container ${nameOf(other.Id) ?? other.Id}`);
      out.IPv6Address = formatIPv6(n);
    }
    return out;
  }
}
