/**
 * Networks as docker-compose and docker-py drive them (root): connect and disconnect of running
 * containers (hot-plug through CNI in the container's namespace), a created container that is
 * disconnected and connected again (compose does that to every container), IPAM pools with
 * ranges and auxiliary addresses, IPv6 subnets, MAC addresses, link aliases and `name.network`
 * in DNS, names with spaces, and a berthd in a network namespace whose /sys is the host's. All
 * traffic stays inside the bridges and namespaces this test makes.
 */
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bridgeOfRecord, expectOk, startDaemon, type RunningDaemon } from '../helpers/daemon';
import { isRoot, until, hasCni, cniReason } from '../helpers/env';
import { busyboxArchive, makeTempDir } from '../helpers/fixtures';

const reason = cniReason;

function bridgeLinks(): Set<string> {
  const out = JSON.parse(execFileSync('ip', ['-j', 'link', 'show', 'type', 'bridge'], { encoding: 'utf8' }) || '[]') as { ifname: string }[];
  return new Set(out.map((l) => l.ifname));
}

describe.skipIf(!isRoot || !hasCni)(`network hot-plug, IPAM and compose's connect dance (${reason})`, () => {
  let work: string;
  let archive: string;
  let daemon: RunningDaemon;
  const img = 'hotplug/busybox:latest';

  beforeAll(async () => {
    work = await makeTempDir('berth-hotplug-');
    // A docker-archive to load: the netns test's berthd cannot reach a registry on the host's loopback.
    archive = await busyboxArchive(work, img, { cmd: ['/bin/busybox', 'sleep', '3600'] });
    daemon = await startDaemon();
    expectOk(await daemon.cli(['load', '-i', archive]));
  });

  afterAll(async () => {
    if (daemon) {
      await daemon.removeAllContainers();
      for (const n of (await daemon.api('/networks')).json ?? []) if (!['bridge', 'host', 'none'].includes(n.Name)) await daemon.api(`/networks/${n.Id}`, { method: 'DELETE' });
      await daemon.stop();
    }
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  const cli = (args: string[]) => daemon.cli(args);
  const inspect = async (ref: string) => (await daemon.api(`/containers/${ref}/json`)).json;
  const createNetwork = async (body: object) => {
    const res = await daemon.api('/networks/create', { method: 'POST', body });
    expect(res.status, res.body).toBe(201);
    return res.json.Id as string;
  };
  const connect = (net: string, container: string, endpoint: object = {}) =>
    daemon.api(`/networks/${encodeURIComponent(net)}/connect`, { method: 'POST', body: { Container: container, EndpointConfig: endpoint } });
  const disconnect = (net: string, container: string) => daemon.api(`/networks/${encodeURIComponent(net)}/disconnect`, { method: 'POST', body: { Container: container } });
  const interfaces = async (container: string) =>
    expectOk(await cli(['exec', container, 'cat', '/proc/net/dev']))
      .stdout.split('\n')
      .slice(2)
      .map((l) => l.trim().split(':')[0])
      .filter(Boolean)
      .sort();

  it('a created container disconnected from its network and connected again runs on it (docker-compose)', async () => {
    await createNetwork({ Name: 'compose_default' });
    expectOk(await cli(['create', '--name', 'cx', '--network', 'compose_default', img]));
    expect((await disconnect('compose_default', 'cx')).status).toBe(200);
    const again = await connect('compose_default', 'cx', { Aliases: ['web'] });
    expect(again.status, again.body).toBe(200);
    expectOk(await cli(['start', 'cx']));
    const c = await inspect('cx');
    expect(c.HostConfig.NetworkMode).toBe('compose_default');
    expect(c.NetworkSettings.Networks.compose_default.IPAddress).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    expect(await interfaces('cx')).toEqual(['eth0', 'lo']);
    // Names resolve as NAME, ALIAS and NAME.NETWORK (compose's `service.network` spelling).
    expectOk(await cli(['run', '-d', '--name', 'client', '--network', 'compose_default', img]));
    for (const name of ['cx', 'web', 'cx.compose_default']) {
      const out = expectOk(await cli(['exec', 'client', '/bin/busybox', 'nslookup', name])).stdout;
      expect(out).toContain(c.NetworkSettings.Networks.compose_default.IPAddress);
    }
    expectOk(await cli(['rm', '-f', 'cx', 'client']));
  });

  it('connects and disconnects a running container at once, and refuses doing either twice', async () => {
    const netId = await createNetwork({ Name: 'hot' });
    expectOk(await cli(['run', '-d', '--name', 'srv', img]));
    expect(await interfaces('srv')).toEqual(['eth0', 'lo']);
    expect(Object.keys((await daemon.api(`/networks/${netId}`)).json.Containers)).toEqual([]);
    const res = await connect('hot', 'srv');
    expect(res.status, res.body).toBe(200);
    expect(await interfaces('srv')).toEqual(['eth0', 'eth1', 'lo']);
    const srv = await inspect('srv');
    const ip = srv.NetworkSettings.Networks.hot.IPAddress;
    expect(Object.keys((await daemon.api(`/networks/${netId}`)).json.Containers)).toEqual([srv.Id]);
    // Another container on the network reaches the hot-plugged interface, by name too.
    expectOk(await cli(['run', '-d', '--name', 'peer', '--network', 'hot', img]));
    expect(expectOk(await cli(['exec', 'peer', '/bin/busybox', 'nslookup', 'srv'])).stdout).toContain(ip);
    expectOk(await cli(['exec', 'peer', '/bin/busybox', 'ping', '-c', '1', '-W', '2', ip]));
    expect((await connect('hot', 'srv')).status).toBe(409);
    expect((await disconnect('hot', 'srv')).status).toBe(200);
    expect(await interfaces('srv')).toEqual(['eth0', 'lo']);
    expect(Object.keys((await daemon.api(`/networks/${netId}`)).json.Containers)).toEqual([(await inspect('peer')).Id]);
    expect((await inspect('srv')).NetworkSettings.Networks.hot).toBeUndefined();
    expect((await cli(['exec', 'peer', '/bin/busybox', 'ping', '-c', '1', '-W', '1', ip])).code).not.toBe(0);
    expect((await disconnect('hot', 'srv')).status).toBe(404);
    // Fixed address and MAC on a hot connect.
    const fixed = await connect('hot', 'srv', { IPAMConfig: { IPv4Address: ip }, MacAddress: '02:42:ac:11:00:02' });
    expect(fixed.status, fixed.body).toBe(200);
    const ep = (await inspect('srv')).NetworkSettings.Networks.hot;
    expect(ep.IPAMConfig.IPv4Address).toBe(ip);
    expect(ep.IPAddress).toBe(ip);
    expect(ep.MacAddress).toBe('02:42:ac:11:00:02');
    expect(expectOk(await cli(['exec', 'srv', 'cat', '/sys/class/net/eth1/address'])).stdout.trim()).toBe('02:42:ac:11:00:02');
    expectOk(await cli(['rm', '-f', 'srv', 'peer']));
  });

  it('keeps IPAM pools as given (range, gateway, auxiliary addresses) and allocates inside the range', async () => {
    const netId = await createNetwork({
      Name: 'pools',
      IPAM: { Driver: 'default', Config: [{ Subnet: '10.209.240.0/24', IPRange: '10.209.240.128/25', Gateway: '10.209.240.254', AuxiliaryAddresses: { a: '10.209.240.129' } }] },
    });
    const net = (await daemon.api(`/networks/${netId}`)).json;
    expect(net.IPAM).toEqual({
      Driver: 'default',
      Options: null,
      Config: [{ Subnet: '10.209.240.0/24', IPRange: '10.209.240.128/25', Gateway: '10.209.240.254', AuxiliaryAddresses: { a: '10.209.240.129' } }],
    });
    expectOk(await cli(['run', '-d', '--name', 'p1', '--network', 'pools', img]));
    const ip = (await inspect('p1')).NetworkSettings.Networks.pools.IPAddress as string;
    const last = Number(ip.split('.')[3]);
    expect(last).toBeGreaterThanOrEqual(128);
    expect(ip).not.toBe('10.209.240.129');
    expect((await inspect('p1')).NetworkSettings.Networks.pools.Gateway).toBe('10.209.240.254');
    expectOk(await cli(['rm', '-f', 'p1']));
    const bad = await daemon.api('/networks/create', { method: 'POST', body: { Name: 'badrange', IPAM: { Config: [{ Subnet: '10.209.241.0/24', IPRange: '10.209.9.0/25' }] } } });
    expect(bad.status).toBe(400);
    expect(bad.json.message).toContain('IPRange');
  });

  it('IPv6 subnets give containers a fixed or allocated IPv6 address; names may hold spaces', async () => {
    const netId = await createNetwork({ Name: 'six', EnableIPv6: true, IPAM: { Driver: 'default', Config: [{ Subnet: 'fd00:b0b::/64', Gateway: 'fd00:b0b::ffff' }] } });
    expect((await daemon.api(`/networks/${netId}`)).json.EnableIPv6).toBe(true);
    const created = await daemon.api('/containers/create?name=v6', {
      method: 'POST',
      body: { Image: img, HostConfig: { NetworkMode: 'six' }, NetworkingConfig: { EndpointsConfig: { six: { IPAMConfig: { IPv6Address: 'fd00:b0b::f00d' } } } } },
    });
    expect(created.status, created.body).toBe(201);
    expectOk(await cli(['start', 'v6']));
    const ep = (await inspect('v6')).NetworkSettings.Networks.six;
    expect(ep.IPAMConfig.IPv6Address).toBe('fd00:b0b::f00d');
    expect(ep.GlobalIPv6Address).toBe('fd00:b0b::f00d');
    expect(ep.IPv6Gateway).toBe('fd00:b0b::ffff');
    expect(expectOk(await cli(['exec', 'v6', 'cat', '/proc/net/if_inet6'])).stdout).toContain('fd000b0b00000000000000000000f00d');
    expectOk(await cli(['rm', '-f', 'v6']));
    const outside = await daemon.api('/containers/create', {
      method: 'POST',
      body: { Image: img, HostConfig: { NetworkMode: 'six' }, NetworkingConfig: { EndpointsConfig: { six: { IPAMConfig: { IPv6Address: 'fd00:dead::1' } } } } },
    });
    expect(outside.status).toBe(400);

    await createNetwork({ Name: 'test 01' });
    expect((await daemon.api(`/networks/${encodeURIComponent('test 01')}`)).json.Name).toBe('test 01');
    expectOk(await cli(['run', '--rm', '--network', 'test 01', img, 'true']));
    expect((await daemon.api(`/networks/${encodeURIComponent('test 01')}`, { method: 'DELETE' })).status).toBe(204);
  });

  it('a link alias resolves for the linking container only; endpoint settings are shown as dockerd shows them', async () => {
    await createNetwork({ Name: 'linked' });
    const created = await daemon.api('/containers/create?name=downstream', {
      method: 'POST',
      body: { Image: img, HostConfig: { NetworkMode: 'linked' }, NetworkingConfig: { EndpointsConfig: { linked: { Links: ['upstream:bar'], DriverOpts: { 'com.example.setting': 'on' } } } } },
    });
    expect(created.status, created.body).toBe(201);
    expectOk(await cli(['start', 'downstream']));
    expectOk(await cli(['run', '-d', '--name', 'upstream', '--network', 'linked', img]));
    expectOk(await cli(['run', '-d', '--name', 'bystander', '--network', 'linked', img]));
    const ep = (await inspect('downstream')).NetworkSettings.Networks.linked;
    expect(ep.Links).toEqual(['upstream:bar']);
    expect(ep.DriverOpts).toEqual({ 'com.example.setting': 'on' });
    expect(ep.IPAMConfig).toBeNull();
    const upstreamIp = (await inspect('upstream')).NetworkSettings.Networks.linked.IPAddress;
    expect(expectOk(await cli(['exec', 'downstream', '/bin/busybox', 'nslookup', 'bar'])).stdout).toContain(upstreamIp);
    expect((await cli(['exec', 'bystander', '/bin/busybox', 'nslookup', 'bar'])).code).not.toBe(0);
    expectOk(await cli(['rm', '-f', 'downstream', 'upstream', 'bystander']));
    // A create naming a network that does not exist is refused before anything is made.
    const missing = await daemon.api('/containers/create', { method: 'POST', body: { Image: img, NetworkingConfig: { EndpointsConfig: { nosuchnet: {} } } } });
    expect(missing.status).toBe(404);
  });

  it('a berthd killed with a container on a user network adopts it on restart and leaves no bridge after', async () => {
    await createNetwork({ Name: 'survive' });
    expectOk(await cli(['run', '-d', '--name', 'keeper', '--network', 'survive', img]));
    expectOk(await cli(['run', '-d', '--name', 'asker', '--network', 'survive', img]));
    const ip = (await inspect('keeper')).NetworkSettings.Networks.survive.IPAddress;
    const bridge = bridgeOfRecord((await daemon.api('/networks/survive')).json);
    await daemon.kill9();
    const again = await startDaemon({ root: daemon.root });
    try {
      expect((await again.api('/containers/keeper/json')).json.State.Running).toBe(true);
      expect(expectOk(await again.cli(['exec', 'asker', '/bin/busybox', 'nslookup', 'keeper'])).stdout).toContain(ip);
      expectOk(await again.cli(['exec', 'asker', '/bin/busybox', 'ping', '-c', '1', '-W', '2', ip]));
      // Hot-plug works on adopted containers too.
      expect((await again.api('/networks/survive/disconnect', { method: 'POST', body: { Container: 'keeper' } })).status).toBe(200);
      await again.removeAllContainers();
      expect((await again.api('/networks/survive', { method: 'DELETE' })).status).toBe(204);
    } finally {
      await again.stop();
      await daemon.stop();
      daemon = await startDaemon();
      expectOk(await daemon.cli(['load', '-i', archive]));
    }
    expect(bridgeLinks().has(bridge)).toBe(false);
  });

  it("a berthd in its own network namespace, with the host's /sys, starts containers on a bridge again and again", async () => {
    const inNetns = await startDaemon({ wrapper: ['unshare', '--net', '--'] });
    try {
      expectOk(await inNetns.cli(['load', '-i', archive]));
      for (let i = 0; i < 3; i++) {
        const res = await inNetns.cli(['run', '--rm', img, 'cat', '/proc/net/dev']);
        expect(res.code, res.stderr).toBe(0);
        expect(res.stdout).toContain('eth0');
      }
    } finally {
      await inNetns.removeAllContainers();
      await inNetns.stop();
    }
  });
});
