/**
 * What berth keeps about networks: a network's record (`<root>/networks/records/<id>.json`) and
 * a container's network settings (`<root>/networks/containers/<id>.json`: networks joined,
 * aliases, requested IPs, port bindings, and while running the endpoints CNI made and the host
 * ports in use), with the names derived from them.
 */
import { createHash } from 'node:crypto';
import { InvalidArgumentError } from '../contracts/errors';
import type { NetworkEndpoint } from '../contracts/network';

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

/** A container's network settings, kept by the network manager (not in the container record). */
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

export const DEFAULT_NETWORK = 'bridge';
/** Container names and aliases; also the network names that are safe as file names. */
export const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** `80`, `53/udp`: a key of PortBindings or ExposedPorts. */
export function parsePortKey(key: string): { port: number; proto: 'tcp' | 'udp' } {
  const m = /^(\d{1,5})(?:\/(tcp|udp))?$/.exec(key);
  const port = m ? Number(m[1]) : NaN;
  if (!m || port < 1 || port > 65535) throw new InvalidArgumentError(`invalid port ${JSON.stringify(key)}: expected PORT[/tcp|udp] with 1 <= PORT <= 65535`);
  return { port, proto: (m[2] as 'tcp' | 'udp') ?? 'tcp' };
}

/** The CNI network name (host-local's state folder): the berth network's name where it is a safe file name. */
export function cniName(rec: NetworkRecord): string {
  return NAME.test(rec.Name) ? `berth-${rec.Name}` : `berth-${rec.Id.slice(0, 12)}`;
}

export function endpointId(containerId: string, network: string): string {
  return createHash('sha256').update(`${containerId}\0${network}`).digest('hex');
}
