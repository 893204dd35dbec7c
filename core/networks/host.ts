/**
 * The host side of a berth bridge network: the bridge device with the gateway address. berth
 * gives containers no default route and turns IPv4 forwarding off for packets arriving on its
 * bridges, so nothing a container sends leaves the host: it reaches its own subnet, and the host
 * (gateway address: DNS responder, published-port proxy) — nothing else.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { promisify } from 'node:util';
import type { NetworkRecord } from './records';

const run = promisify(execFile);

async function ip(args: string[]): Promise<string> {
  try {
    const { stdout } = await run('ip', args);
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`ip ${args.join(' ')}: ${e.stderr?.trim() || e.message}`);
  }
}

/**
 * Whether a configured bridge is up with its address: asks the kernel (getifaddrs, over netlink in
 * berthd's own network namespace), not /sys/class/net, which shows the namespace of whoever
 * mounted sysfs. Cheap enough for every start; a bridge without an address reads as absent and
 * is repaired by ensureBridge.
 */
function bridgeReady(dev: string): boolean {
  return dev in networkInterfaces();
}

/** Every link of berthd's network namespace (`ip link`), for the checks at start and stop. */
export async function linkNames(): Promise<Set<string>> {
  const out = await ip(['-o', 'link', 'show']);
  return new Set(
    out
      .split('\n')
      .map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1])
      .filter((n): n is string => !!n),
  );
}

/** Create (or repair) the bridge: present, gateway addresses set, forwarding off, up. */
async function ensureBridge(dev: string, gateway: string, prefixLen: number, gateway6?: { address: string; len: number }): Promise<void> {
  await ip(['link', 'add', 'name', dev, 'type', 'bridge']).catch((err: Error) => {
    if (!/File exists/.test(err.message)) throw err; // made earlier, or by another start at the same moment
  });
  await ip(['addr', 'replace', `${gateway}/${prefixLen}`, 'dev', dev]);
  // Per-interface forwarding decides whether packets received here may be routed elsewhere.
  await fs.writeFile(`/proc/sys/net/ipv4/conf/${dev}/forwarding`, '0').catch(() => undefined);
  await fs.writeFile(`/proc/sys/net/ipv6/conf/${dev}/forwarding`, '0').catch(() => undefined);
  await fs.writeFile(`/proc/sys/net/ipv6/conf/${dev}/disable_ipv6`, gateway6 ? '0' : '1').catch(() => undefined);
  if (gateway6) await ip(['-6', 'addr', 'replace', `${gateway6.address}/${gateway6.len}`, 'dev', dev, 'nodad']);
  await ip(['link', 'set', dev, 'up']);
}

async function deleteBridge(dev: string): Promise<void> {
  await ip(['link', 'del', dev]).catch(() => undefined); // already gone is fine
}

/**
 * The bridges of berth's networks. A bridge is made when its network's first container starts
 * and stays while berthd runs, so later starts only check it is still there.
 */
export class HostBridges {
  private readonly ready = new Set<string>();

  async up(net: Pick<NetworkRecord, 'Bridge' | 'Subnet' | 'Gateway' | 'Subnet6' | 'Gateway6'>): Promise<void> {
    if (this.ready.has(net.Bridge) && bridgeReady(net.Bridge)) return;
    const c = parseCidr(net.Subnet)!;
    const c6 = net.Subnet6 ? parseCidr6(net.Subnet6) : undefined;
    await ensureBridge(net.Bridge, net.Gateway, c.len, c6 ? { address: net.Gateway6!, len: c6.len } : undefined);
    this.ready.add(net.Bridge);
  }

  async down(dev: string): Promise<void> {
    this.ready.delete(dev);
    await deleteBridge(dev);
  }
}

/** IPv4 routes of the host as [network, prefixLen], to keep berth's subnets clear of them. */
export async function hostRoutes(): Promise<[number, number][]> {
  const out = await ip(['-4', 'route', 'show', 'table', 'all']).catch(() => '');
  const routes: [number, number][] = [];
  for (const line of out.split('\n')) {
    const first = line.trim().split(/\s+/)[0];
    const dest = first === 'local' || first === 'broadcast' ? line.trim().split(/\s+/)[1] : first;
    if (!dest || dest === 'default') continue;
    const [addr, len] = dest.split('/');
    const n = parseIPv4(addr);
    if (n !== undefined) routes.push([n, len === undefined ? 32 : Number(len)]);
  }
  return routes;
}

export function parseIPv4(s: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  return ((parts[0] << 24) >>> 0) + (parts[1] << 16) + (parts[2] << 8) + parts[3];
}

export function formatIPv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export function maskOf(len: number): number {
  return len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
}

/** Parse `a.b.c.d/len` into its network address and length; undefined when malformed. */
export function parseCidr(cidr: string): { network: number; len: number } | undefined {
  const [addr, lenText] = cidr.split('/');
  const n = parseIPv4(addr ?? '');
  const len = Number(lenText);
  if (n === undefined || !Number.isInteger(len) || len < 8 || len > 30) return undefined;
  return { network: (n & maskOf(len)) >>> 0, len };
}

export function overlaps(a: [number, number], b: [number, number]): boolean {
  const len = Math.min(a[1], b[1]);
  return (a[0] & maskOf(len)) >>> 0 === (b[0] & maskOf(len)) >>> 0;
}

/** An IPv6 address as a 128-bit number (`::` and embedded IPv4 accepted); undefined when malformed. */
export function parseIPv6(s: string): bigint | undefined {
  if (!/^[0-9a-fA-F:.]+$/.test(s) || s.split('::').length > 2) return undefined;
  let text = s;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const n = parseIPv4(v4[1]);
    if (n === undefined) return undefined;
    text = `${text.slice(0, -v4[1].length)}${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
  }
  const [head, tail] = text.split('::');
  const groups = (part: string | undefined) => (part ? part.split(':') : []);
  const h = groups(head);
  const t = groups(tail);
  const fill = tail === undefined ? 0 : 8 - h.length - t.length;
  const all = [...h, ...Array(Math.max(fill, 0)).fill('0'), ...t];
  if (all.length !== 8 || (tail !== undefined && fill < 1) || all.some((g) => !/^[0-9a-fA-F]{1,4}$/.test(g))) return undefined;
  return all.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

export function formatIPv6(n: bigint): string {
  const groups = Array.from({ length: 8 }, (_, i) => Number((n >> BigInt(112 - 16 * i)) & 0xffffn).toString(16));
  // The longest run of two or more zero groups becomes "::" (RFC 5952).
  let best = [-1, 0];
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > best[1]) best = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  if (best[1] < 2) return groups.join(':');
  return `${groups.slice(0, best[0]).join(':')}::${groups.slice(best[0] + best[1]).join(':')}`;
}

function mask6(len: number): bigint {
  return len === 0 ? 0n : ((1n << 128n) - 1n) ^ ((1n << BigInt(128 - len)) - 1n);
}

/** Parse `addr/len` (IPv6) into its network address and length; lengths 16 to 120. */
export function parseCidr6(cidr: string): { network: bigint; len: number } | undefined {
  const [addr, lenText] = cidr.split('/');
  const n = parseIPv6(addr ?? '');
  const len = Number(lenText);
  if (n === undefined || !Number.isInteger(len) || len < 16 || len > 120) return undefined;
  return { network: n & mask6(len), len };
}

export function inCidr6(addr: bigint, cidr: { network: bigint; len: number }): boolean {
  return (addr & mask6(cidr.len)) === cidr.network;
}

export interface InterfaceCounters {
  rx_bytes: number;
  rx_packets: number;
  rx_errors: number;
  rx_dropped: number;
  tx_bytes: number;
  tx_packets: number;
  tx_errors: number;
  tx_dropped: number;
}

/** Traffic counters of the interfaces in a process's network namespace, lo left out (docker stats' `networks`). */
export async function interfaceCounters(pid: number): Promise<Record<string, InterfaceCounters>> {
  const text = await fs.readFile(`/proc/${pid}/net/dev`, 'utf8').catch(() => '');
  const out: Record<string, InterfaceCounters> = {};
  for (const line of text.split('\n').slice(2)) {
    const [name, rest] = line.split(':');
    if (!rest || name.trim() === 'lo') continue;
    const n = rest.trim().split(/\s+/).map(Number);
    out[name.trim()] = { rx_bytes: n[0], rx_packets: n[1], rx_errors: n[2], rx_dropped: n[3], tx_bytes: n[8], tx_packets: n[9], tx_errors: n[10], tx_dropped: n[11] };
  }
  return out;
}
