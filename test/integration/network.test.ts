/**
 * Networks end to end (root): CNI bridge networks, published ports through berthd's userland
 * proxy, container DNS on user-defined networks, and that nothing stays on the host afterwards
 * (bridges, veths, netns, iptables rules). All traffic stays on loopback and on the bridges and
 * containers this test starts.
 */
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { promisify } from 'node:util';
import { execFile } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bridgeOfRecord, expectOk, startDaemon, type RunningDaemon } from '../helpers/daemon';
import { isRoot, until, hasCni, cniReason } from '../helpers/env';
import { buildBusyboxLayout, makeTempDir, pushImage } from '../helpers/fixtures';
import { freePort, startRegistry, type RunningRegistry } from '../helpers/registry';

const run = promisify(execFile);

function httpGet(port: number, host = '127.0.0.1'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path: '/', timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
  });
}

/** Links of a type as name -> master (or ''). */
function links(type: string): Map<string, string> {
  const out = JSON.parse(execFileSync('ip', ['-j', 'link', 'show', 'type', type], { encoding: 'utf8' }) || '[]') as { ifname: string; master?: string }[];
  return new Map(out.map((l) => [l.ifname, l.master ?? '']));
}

const hostState = () => ({
  netns: execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }),
  iptables: execFileSync('iptables-save', { encoding: 'utf8' })
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .join('\n'),
});

describe.skipIf(!isRoot || !hasCni)(`networks, published ports and DNS (${cniReason})`, () => {
  let registry: RunningRegistry;
  let daemon: RunningDaemon;
  let img: string;
  let before: ReturnType<typeof hostState>;
  let vethsBefore: Map<string, string>;
  const bridges = new Set<string>();

  beforeAll(async () => {
    before = hostState();
    vethsBefore = links('veth');
    registry = await startRegistry();
    const work = await makeTempDir('berth-net-');
    try {
      const layout = await buildBusyboxLayout(path.join(work, 'layout'), {
        extraFiles: { 'www/index.html': 'hello from berth\n' },
        cmd: ['/bin/busybox', 'httpd', '-f', '-p', '80', '-h', '/www'],
      });
      await run('umoci', ['config', '--image', layout.ref, '--config.exposedports', '80/tcp']);
      await pushImage(layout.ref, registry.host, 'test/web:latest');
    } finally {
      await fs.rm(work, { recursive: true, force: true });
    }
    img = `${registry.host}/test/web:latest`;
    daemon = await startDaemon();
    expectOk(await daemon.cli(['pull', '-q', img]));
  });

  afterAll(async () => {
    if (daemon) {
      await daemon.removeAllContainers();
      for (const n of ['front', 'back', 'fixed']) await daemon.cli(['network', 'rm', n]);
      await daemon.stop();
    }
    await registry?.stop();
    // berthd's stop takes its unused bridges away: nothing of berth stays on the host.
    expect(bridges.size).toBeGreaterThan(0);
    const bridgeLinks = links('bridge');
    for (const b of bridges) expect(bridgeLinks.has(b), `bridge ${b} left behind`).toBe(false);
    for (const [name, master] of links('veth')) {
      expect(bridges.has(master), `veth ${name} left on ${master}`).toBe(false);
      if (!master) expect(vethsBefore.has(name), `orphaned veth ${name}`).toBe(true);
    }
    expect(hostState()).toEqual(before);
  });

  const cli = (args: string[]) => daemon.cli(args);
  const inspect = async (ref: string) => JSON.parse(expectOk(await cli(['inspect', ref])).stdout)[0];
  const bridgeOf = async (network: string) => {
    const n = JSON.parse(expectOk(await cli(['network', 'inspect', network])).stdout)[0];
    bridges.add(bridgeOfRecord(n));
    return n;
  };

  it('publishes a port on 127.0.0.1 and answers HTTP from the host', async () => {
    const port = await freePort();
    const id = expectOk(await cli(['run', '-d', '--name', 'web', '-p', `127.0.0.1:${port}:80`, img])).stdout.trim();
    const res = await until('the published port to answer', () => httpGet(port));
    expect(res.status).toBe(200);
    expect(res.body).toBe('hello from berth\n');
    const info = await inspect(id);
    expect(info.NetworkSettings.Ports['80/tcp']).toEqual([{ HostIp: '127.0.0.1', HostPort: String(port) }]);
    expect(info.NetworkSettings.Networks.bridge.IPAddress).toMatch(/^10\.207\.\d+\.\d+$/);
    await bridgeOf('bridge');
    expect(expectOk(await cli(['port', 'web'])).stdout).toBe(`80/tcp -> 127.0.0.1:${port}\n`);
    expect(expectOk(await cli(['ps'])).stdout).toContain(`127.0.0.1:${port}->80/tcp`);
    // The container's own address and name are in its /etc/hosts; the default bridge has no DNS.
    const hosts = expectOk(await cli(['exec', 'web', 'cat', '/etc/hosts'])).stdout;
    expect(hosts).toContain(`${info.NetworkSettings.IPAddress}\t`);
    expect(hosts).toMatch(/\bweb\b/);
    expect(expectOk(await cli(['exec', 'web', 'cat', '/etc/resolv.conf'])).stdout).not.toContain('10.207.');
  });

  it('refuses a second container on the same host port and leaves no second container', async () => {
    const port = Number(JSON.parse(expectOk(await cli(['inspect', 'web'])).stdout)[0].NetworkSettings.Ports['80/tcp'][0].HostPort);
    const count = expectOk(await cli(['ps', '-a', '-q']))
      .stdout.split('\n')
      .filter(Boolean).length;
    const res = await cli(['run', '-d', '--name', 'web2', '-p', `127.0.0.1:${port}:80`, img]);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(new RegExp(`127\\.0\\.0\\.1:${port}.*already allocated.*web`));
    expect(
      expectOk(await cli(['ps', '-a', '-q']))
        .stdout.split('\n')
        .filter(Boolean).length,
    ).toBe(count);
    expect((await cli(['inspect', 'web2'])).code).not.toBe(0);
  });

  it('releases the port on stop, so another container can take it', async () => {
    const port = Number((await inspect('web')).NetworkSettings.Ports['80/tcp'][0].HostPort);
    expectOk(await cli(['stop', '-t', '1', 'web']));
    await expect(httpGet(port)).rejects.toThrow();
    expect((await inspect('web')).NetworkSettings.Ports['80/tcp']).toBeNull();
    expectOk(await cli(['run', '-d', '--name', 'web3', '-p', `127.0.0.1:${port}:80`, img]));
    expect((await until('web3 to answer', () => httpGet(port))).body).toBe('hello from berth\n');
    expectOk(await cli(['rm', '-f', 'web3', 'web']));
  });

  it('-P publishes the exposed ports on free host ports', async () => {
    expectOk(await cli(['run', '-d', '--name', 'pall', '-P', img]));
    const out = expectOk(await cli(['port', 'pall', '80'])).stdout.trim();
    const m = /^0\.0\.0\.0:(\d+)$/.exec(out);
    expect(m, out).not.toBeNull();
    const res = await until('the -P port to answer', () => httpGet(Number(m![1])));
    expect(res.body).toBe('hello from berth\n');
    expectOk(await cli(['rm', '-f', 'pall']));
  });

  it('containers on one user network reach each other by name and alias; other networks cannot', async () => {
    expectOk(await cli(['network', 'create', 'front']));
    expectOk(await cli(['network', 'create', '--subnet', '10.209.250.0/24', 'back']));
    const front = await bridgeOf('front');
    const back = await bridgeOf('back');
    expect(back.IPAM.Config[0].Subnet).toBe('10.209.250.0/24');
    expect(expectOk(await cli(['network', 'ls'])).stdout).toMatch(/front\s+bridge/);
    expectOk(await cli(['run', '-d', '--name', 'srv', '--network', 'front', '--network-alias', 'www', img]));
    const srvIp = (await inspect('srv')).NetworkSettings.Networks.front.IPAddress;
    const byName = expectOk(await cli(['run', '--rm', '--network', 'front', img, '/bin/busybox', 'wget', '-qO-', 'http://srv/']));
    expect(byName.stdout).toBe('hello from berth\n');
    const byAlias = expectOk(await cli(['run', '--rm', '--network', 'front', img, '/bin/busybox', 'wget', '-qO-', 'http://www/']));
    expect(byAlias.stdout).toBe('hello from berth\n');
    const resolv = expectOk(await cli(['run', '--rm', '--network', 'front', img, 'cat', '/etc/resolv.conf'])).stdout;
    expect(resolv).toContain(`nameserver ${front.IPAM.Config[0].Gateway}`);
    // Unknown names get NXDOMAIN from berth's responder, which forwards nothing.
    const unknown = await cli(['run', '--rm', '--network', 'front', img, '/bin/busybox', 'nslookup', 'example.com']);
    expect(unknown.code).not.toBe(0);
    // From another network: no name, and no route to the address either.
    const other = await cli(['run', '--rm', '--network', 'back', img, '/bin/busybox', 'sh', '-c', `/bin/busybox nc -w 2 ${srvIp} 80 </dev/null && echo reached || echo unreachable`]);
    expect(other.stdout).toContain('unreachable');
    const otherName = await cli(['run', '--rm', '--network', 'back', img, '/bin/busybox', 'nslookup', 'srv']);
    expect(otherName.code).not.toBe(0);
    // A network in use cannot be removed; the message names the container.
    const rm = await cli(['network', 'rm', 'front']);
    expect(rm.code).not.toBe(0);
    expect(rm.stderr).toContain('srv');
    expectOk(await cli(['rm', '-f', 'srv']));
    expectOk(await cli(['network', 'rm', 'front']));
    // network rm takes the bridge away at once.
    expect(links('bridge').has(bridgeOfRecord(front))).toBe(false);
  });

  it('--ip gives a fixed address; connect and disconnect apply to stopped containers', async () => {
    expectOk(await cli(['network', 'create', '--subnet', '10.209.251.0/24', 'fixed']));
    await bridgeOf('fixed');
    const out = expectOk(await cli(['run', '--rm', '--network', 'fixed', '--ip', '10.209.251.77', img, 'cat', '/etc/hosts'])).stdout;
    expect(out).toContain('10.209.251.77\t');
    expectOk(await cli(['create', '--name', 'multi', img, 'sh', '-c', 'cat /proc/net/dev']));
    expectOk(await cli(['network', 'connect', 'fixed', 'multi']));
    expectOk(await cli(['start', 'multi']));
    await until('multi to exit', async () => (await inspect('multi')).State.Status === 'exited');
    const ifaces = expectOk(await cli(['logs', 'multi'])).stdout;
    expect(ifaces).toContain('eth0');
    expect(ifaces).toContain('eth1');
    expectOk(await cli(['network', 'disconnect', 'fixed', 'multi']));
    expect(Object.keys((await inspect('multi')).NetworkSettings.Networks)).toEqual(['bridge']);
    expectOk(await cli(['rm', 'multi']));
    expectOk(await cli(['network', 'rm', 'fixed']));
  });

  it('--network none has only lo; bad network names are clear errors', async () => {
    const res = expectOk(await cli(['run', '--rm', '--network', 'none', img, 'cat', '/proc/net/dev']));
    expect(
      res.stdout
        .split('\n')
        .slice(2)
        .filter(Boolean)
        .map((l) => l.trim().split(':')[0]),
    ).toEqual(['lo']);
    const bad = await cli(['run', '--rm', '--network', 'nosuchnet', img, 'true']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('network nosuchnet not found');
  });
});
