/**
 * Network create: Docker's request checked (name, driver, IPAM pools, bridge name) and turned
 * into a record; also the default `bridge` network berthd makes on its first start.
 */
import { createHash, randomBytes } from 'node:crypto';
import { ConflictError, ForbiddenError, InvalidArgumentError } from '../contracts/errors';
import { formatIPv4 } from './host';
import { type IpamPoolRequest, type Ipam, type Subnet4 } from './ipam';
import { type NetworkRecord, DEFAULT_NETWORK } from './records';
import type { NetworkStore } from './store';

/** POST /networks/create (Docker's body: Name, Driver, EnableIPv6, IPAM {Driver, Config[{Subnet, IPRange, Gateway, AuxiliaryAddresses}]}, Options, Labels). */
export interface NetworkCreateRequest {
  Name?: string;
  Driver?: string;
  EnableIPv6?: boolean;
  IPAM?: { Driver?: string; Config?: IpamPoolRequest[] | null } | null;
  Options?: Record<string, string> | null;
  Labels?: Record<string, string> | null;
  Internal?: boolean;
  CheckDuplicate?: boolean;
}

/** dockerd takes any network name, spaces included; berth refuses control characters and slashes (names end up in paths and logs). */
const NETWORK_NAME = /^[^\x00-\x1f\x7f/]{1,128}$/;
const PREDEFINED = new Set(['bridge', 'host', 'none', 'default']);

export async function createNetwork(req: NetworkCreateRequest, store: NetworkStore, ipam: Ipam): Promise<NetworkRecord> {
  const name = req?.Name;
  if (!name || !NETWORK_NAME.test(name)) throw new InvalidArgumentError(`invalid network name ${JSON.stringify(name ?? '')}: expected 1 to 128 characters, no slash or control characters`);
  if (PREDEFINED.has(name)) throw new ForbiddenError(`operation is not permitted on predefined ${name} network`);
  if (store.byName(name)) throw new ConflictError(`network with name ${name} already exists`);
  if (req.Driver && req.Driver !== 'bridge') throw new InvalidArgumentError(`network driver ${JSON.stringify(req.Driver)} is not supported (bridge)`);
  if (req.IPAM?.Driver && req.IPAM.Driver !== 'default') throw new InvalidArgumentError(`IPAM driver ${JSON.stringify(req.IPAM.Driver)} is not supported (default)`);
  const pools = req.IPAM?.Config ?? [];
  const v4 = pools.filter((p) => p.Subnet && !p.Subnet.includes(':'));
  const v6 = pools.filter((p) => p.Subnet?.includes(':'));
  if (pools.some((p) => !p.Subnet)) throw new InvalidArgumentError('IPAM.Config: every pool needs a Subnet');
  if (v4.length > 1 || v6.length > 1) throw new InvalidArgumentError('IPAM.Config: berth takes one IPv4 and one IPv6 pool per network');
  const pool4 = v4[0];
  const subnet = await ipam.subnet4(pool4);
  const bridgeName = req.Options?.['com.docker.network.bridge.name'];
  if (bridgeName !== undefined && (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,14}$/.test(bridgeName) || store.list().some((r) => r.Bridge === bridgeName))) {
    throw new InvalidArgumentError(`invalid com.docker.network.bridge.name ${JSON.stringify(bridgeName)}: expected an unused interface name of at most 15 characters`);
  }
  const rec = newRecord(name, subnet, pool4?.Gateway, req.Labels ?? {}, bridgeName);
  if (v6[0]) Object.assign(rec, ipam.subnet6(v6[0], !!req.EnableIPv6));
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
  await store.saveRecord(rec);
  await ipam.reserveAuxiliary(rec);
  return rec;
}

/** The default `bridge` network, made once on a fresh root. */
export async function ensureDefaultNetwork(store: NetworkStore, ipam: Ipam): Promise<void> {
  if (store.byName(DEFAULT_NETWORK)) return;
  const subnet = await ipam.freeSubnet();
  await store.saveRecord(newRecord(DEFAULT_NETWORK, subnet, undefined, {}, ipam.defaultBridgeDevice()));
}

function newRecord(name: string, subnet: Subnet4, gateway: string | undefined, labels: Record<string, string>, bridge?: string): NetworkRecord {
  const id = createHash('sha256')
    .update(`${name}\0${randomBytes(16).toString('hex')}`)
    .digest('hex');
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
