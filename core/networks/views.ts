/**
 * What Docker clients see of networks: `network inspect`, and the network parts of `inspect`
 * (NetworkSettings), `ps` (Ports) and `port`.
 */
import { type ContainerNet, type NetworkRecord, DEFAULT_NETWORK, endpointId, parsePortKey } from './records';
import type { NetworkStore } from './store';

/** Docker's network inspect shape. */
export function networkInspect(rec: NetworkRecord, store: NetworkStore, nameOf: (id: string) => string | undefined) {
  const containers: Record<string, unknown> = {};
  for (const c of store.usersOf(rec.Name)) {
    const ep = c.Endpoints?.find((e) => e.network === rec.Name);
    if (!ep) continue;
    containers[c.Id] = { Name: nameOf(c.Id) ?? '', EndpointID: endpointId(c.Id, rec.Name), MacAddress: ep.mac ?? '', IPv4Address: ep.address, IPv6Address: ep.address6 ?? '' };
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

/** NetworkSettings of `docker inspect`. */
export function networkSettings(id: string, c: ContainerNet | undefined, store: NetworkStore) {
  const networks: Record<string, unknown> = {};
  const ports: Record<string, { HostIp: string; HostPort: string }[] | null> = {};
  if (c) {
    for (const [name, cfg] of Object.entries(c.Networks)) {
      const net = store.byName(name);
      const ep = c.Endpoints?.find((e) => e.network === name);
      const [ip, len] = ep ? ep.address.split('/') : ['', '0'];
      const [ip6, len6] = ep?.address6 ? ep.address6.split('/') : ['', '0'];
      const ipam = {
        ...(cfg.IPv4Address ? { IPv4Address: cfg.IPv4Address } : {}),
        ...(cfg.IPv6Address ? { IPv6Address: cfg.IPv6Address } : {}),
        ...(cfg.LinkLocalIPs ? { LinkLocalIPs: cfg.LinkLocalIPs } : {}),
      };
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
    Gateway: primary?.gateway ?? (primary ? (store.byName(primary.network)?.Gateway ?? '') : ''),
    GlobalIPv6Address: ip6,
    GlobalIPv6PrefixLen: Number(len6),
    IPv6Gateway: primary?.address6 ? (store.byName(primary.network)?.Gateway6 ?? '') : '',
    MacAddress: primary?.mac ?? '',
  };
}

/** Ports of `GET /containers/json`. */
export function summaryPorts(c: ContainerNet | undefined): { IP?: string; PrivatePort: number; PublicPort?: number; Type: string }[] {
  if (!c) return [];
  const out: { IP?: string; PrivatePort: number; PublicPort?: number; Type: string }[] = (c.Ports ?? []).map((p) => ({
    IP: p.hostIp,
    PrivatePort: p.containerPort,
    PublicPort: p.hostPort,
    Type: p.proto,
  }));
  for (const key of c.ExposedPorts) {
    const { port, proto } = parsePortKey(key);
    if (!out.some((o) => o.PrivatePort === port && o.Type === proto)) out.push({ PrivatePort: port, Type: proto });
  }
  return out;
}
