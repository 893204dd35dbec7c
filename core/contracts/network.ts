/**
 * What a network isolator (berth's `isolator.network`, CNI) and core's network manager
 * (core/networks) tell each other. Core owns network records, IPAM state, published ports (a
 * userland proxy) and the per-network DNS responder; the isolator owns the container's side:
 * it runs CNI ADD in `attach` (the child waits in its new network namespace), DEL in `cleanup`,
 * caches each result in the container's state dir, and rewrites the container's /etc/hosts and
 * /etc/resolv.conf (written by isolator.namespaces in `plan`, bind-mounted after attach).
 *
 * The isolator resolves this service from its context's container with the token below.
 */
export interface NetworkJoin {
  /** Network name (`bridge`, or a user-defined one). */
  network: string;
  /** The CNI network configuration list (cniVersion 1.0.0) to run for this network. */
  cniConfig: Record<string, unknown>;
  /** Interface name inside the container: eth0 for the first network, eth1 ... after. */
  ifname: string;
  /** A fixed IPv4 address (`--ip`), handed to host-local IPAM through CNI_ARGS IP=. */
  ip?: string;
  /** A fixed MAC address for the interface (Config.MacAddress / the endpoint's MacAddress). */
  mac?: string;
  /** Names under which the container's address is written to its own /etc/hosts. */
  hostNames: string[];
  /** The network's DNS responder address: resolv.conf points there (user-defined networks only). */
  dnsServer?: string;
}

/** What CNI ADD gave a container on one network. */
export interface NetworkEndpoint {
  network: string;
  ifname: string;
  /** CIDR form, e.g. 10.207.1.2/24. */
  address: string;
  gateway?: string;
  mac?: string;
}

export interface NetworkService {
  /** The networks a container joins when it starts (none for NetworkMode none/host, container:...). Brings each network's host side up. */
  joins(containerId: string): Promise<NetworkJoin[]>;
  /** The container's endpoints exist: publish its ports and answer DNS for it. Throws (e.g. a port conflict) to fail the start. */
  attached(containerId: string, endpoints: NetworkEndpoint[]): Promise<void>;
  /** The endpoints are gone (stop, crash, failed start): release ports and DNS names. */
  detached(containerId: string): Promise<void>;
}

export const NetworkService = Symbol.for('berth.NetworkService');
