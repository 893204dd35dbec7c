/**
 * The host side of a berth bridge network: the bridge device with the gateway address. berth
 * gives containers no default route and turns IPv4 forwarding off for packets arriving on its
 * bridges, so nothing a container sends leaves the host: it reaches its own subnet, and the host
 * (gateway address: DNS responder, published-port proxy) — nothing else.
 */
import { execFile } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import { promisify } from 'node:util';

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

export function linkExists(dev: string): boolean {
  return existsSync(`/sys/class/net/${dev}`);
}

/** Create (or repair) the bridge: present, gateway address set, forwarding off, up. */
export async function ensureBridge(dev: string, gateway: string, prefixLen: number): Promise<void> {
  if (!linkExists(dev)) {
    await ip(['link', 'add', 'name', dev, 'type', 'bridge']).catch((err) => {
      if (!linkExists(dev)) throw err; // another start made it at the same moment
    });
  }
  await ip(['addr', 'replace', `${gateway}/${prefixLen}`, 'dev', dev]);
  // Per-interface IPv4 forwarding decides whether packets received here may be routed elsewhere.
  await fs.writeFile(`/proc/sys/net/ipv4/conf/${dev}/forwarding`, '0').catch(() => undefined);
  await fs.writeFile(`/proc/sys/net/ipv6/conf/${dev}/disable_ipv6`, '1').catch(() => undefined);
  await ip(['link', 'set', dev, 'up']);
}

export async function deleteBridge(dev: string): Promise<void> {
  if (linkExists(dev)) await ip(['link', 'del', dev]).catch(() => undefined);
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
  return ((a[0] & maskOf(len)) >>> 0) === ((b[0] & maskOf(len)) >>> 0);
}
