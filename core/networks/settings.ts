/**
 * A container's network settings from its create (or connect) request: the network it is on
 * (NetworkMode), what it asks for there (aliases, fixed addresses, MAC, links), exposed and
 * published ports. Everything is checked here, so a request that cannot work creates nothing.
 */
import { InvalidArgumentError, NotFoundError } from '../contracts/errors';
import { parseIPv4, parseIPv6 } from './host';
import type { Ipam } from './ipam';
import type { PortPublisher } from './ports';
import { type ContainerNet, type EndpointConfig, type EndpointRequest, type NetworkRecord, type PortBinding, DEFAULT_NETWORK, NAME, parsePortKey } from './records';
import type { NetworkStore } from './store';

const MAC = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

export class ContainerSettings {
  constructor(
    private readonly store: NetworkStore,
    private readonly ipam: Ipam,
    private readonly ports: PortPublisher,
    private readonly nameOf: (id: string) => string | undefined,
  ) {}

  /**
   * Check a create request's network part and build the container's settings; nothing is kept
   * until save(). Port conflicts with running containers (or anything else holding the port)
   * are refused here, so a conflicting container is never created.
   */
  async configure(id: string, hostConfig: Record<string, unknown>, endpoints: Record<string, EndpointRequest> | undefined, exposedPorts: string[], containerMac?: string): Promise<ContainerNet> {
    const rawMode = (hostConfig.NetworkMode as string | undefined) || 'default';
    const mode = rawMode === 'default' ? DEFAULT_NETWORK : rawMode;
    const cfg: ContainerNet = { Id: id, Mode: mode, Networks: {}, PortBindings: {}, PublishAllPorts: hostConfig.PublishAllPorts === true, ExposedPorts: [] };
    // An endpoint must name a network that exists (dockerd: 404), even one other than NetworkMode.
    for (const name of Object.keys(endpoints ?? {})) if (mode !== 'host' && !this.store.find(name)) throw new NotFoundError(`network ${name} not found`);
    // container:<id> shares that container's network namespace: no networks of its own.
    if (mode !== 'none' && mode !== 'host' && !mode.startsWith('container:')) {
      const net = this.store.find(mode);
      if (!net) throw new NotFoundError(`network ${mode} not found`);
      for (const key of Object.keys(endpoints ?? {})) {
        if (key !== mode && key !== rawMode && key !== net.Id && !this.store.find(key)) throw new NotFoundError(`network ${key} not found`);
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
    await this.ports.check(id, cfg);
    return cfg;
  }

  /** Check and normalise what a container asks for on a network (create or connect). */
  endpointConfig(net: NetworkRecord, req: EndpointRequest, containerMac?: string, self?: string): EndpointConfig {
    const aliases = req.Aliases ?? [];
    if (aliases.length && net.Name === DEFAULT_NETWORK) throw new InvalidArgumentError('network-scoped aliases are only supported for user-defined networks');
    for (const a of aliases) if (!NAME.test(a)) throw new InvalidArgumentError(`invalid network alias ${JSON.stringify(a)}`);
    const cfg: EndpointConfig = { Aliases: aliases, ...this.ipam.requestedAddresses(net, req, this.nameOf, self) };
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
}
