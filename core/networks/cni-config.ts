/**
 * The CNI network configuration list berth runs for a container on a network: the bridge plugin
 * on the network's bridge, with host-local IPAM over its subnets (and IPRange), and the fixed
 * addresses and MAC the container asked for.
 */
import { formatIPv4, maskOf, parseCidr } from './host';
import { type EndpointConfig, type NetworkRecord, cniName } from './records';

export function cniConfig(rec: NetworkRecord, ipamDir: string, ep?: EndpointConfig): Record<string, unknown> {
  const ranges: Record<string, string>[][] = [[{ subnet: rec.Subnet, gateway: rec.Gateway, ...range4(rec) }]];
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
        ipam: { type: 'host-local', ranges, dataDir: ipamDir },
      },
    ],
  };
}

/** host-local's rangeStart/rangeEnd for the network's IPv4 IPRange, if it has one. */
function range4(rec: NetworkRecord): Record<string, string> {
  const given = rec.IPAMConfig?.find((p) => !p.Subnet.includes(':'))?.IPRange;
  if (!given) return {};
  const range = parseCidr(given)!;
  const subnet = parseCidr(rec.Subnet)!;
  const first = Math.max(range.network, subnet.network + 1);
  const last = Math.min((range.network | ~maskOf(range.len)) >>> 0, ((subnet.network | ~maskOf(subnet.len)) >>> 0) - 1);
  return { rangeStart: formatIPv4(first), rangeEnd: formatIPv4(last) };
}
