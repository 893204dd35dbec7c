/**
 * CRI pod networking the Kubernetes way (root): berthd reads the first CNI config of its conf dir
 * (cri.cniConfDir, lexical order), runs ADD in each sandbox's network namespace and reports the
 * address in PodSandboxStatus; two pods on that bridge reach each other by IP (busybox nc); DEL at
 * StopPodSandbox leaves no veth on the bridge and no address reserved in host-local's store. The
 * config has no portmap plugin: a pod's host port is berth's userland proxy, on loopback here.
 * The bridge (bcricni0) and subnet (10.231.0.0/16) are this test's own; no masquerade, no iptables.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import * as net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { criClient } from '../helpers/cri';
import { startDaemon, type RunningDaemon } from '../helpers/daemon';
import { isRoot, until, hasCni, cniReason } from '../helpers/env';
import { makeTempDir, pushBusybox } from '../helpers/fixtures';
import { startRegistry, type RunningRegistry } from '../helpers/registry';

const BRIDGE = 'bcricni0';
const PORT = 7777;

/** The veths the bridge has (each pod's host side). */
function bridgePorts(): string[] {
  return execFileSync('ip', ['-o', 'link', 'show', 'master', BRIDGE], { encoding: 'utf8' }).split('\n').filter(Boolean);
}

describe.skipIf(!isRoot || !hasCni)(`CRI pods on a CNI bridge from the conf dir (${cniReason})`, () => {
  let registry: RunningRegistry;
  let daemon: RunningDaemon;
  let cri: ReturnType<typeof criClient>;
  let work: string;
  let confDir: string;
  let ipamDir: string;
  let criDir: string;
  let image: string;

  const podConfig = (name: string) => ({ metadata: { name, uid: `uid-${name}`, namespace: 'cni-test', attempt: 0 }, linux: {} });

  beforeAll(async () => {
    registry = await startRegistry();
    await pushBusybox(registry.host, 'test/busybox:latest');
    image = `${registry.host}/test/busybox:latest`;
    work = await makeTempDir('berth-cri-cni-');
    confDir = path.join(work, 'net.d');
    ipamDir = path.join(work, 'ipam');
    await fs.mkdir(confDir);
    const bridge = (name: string, bridgeName: string, subnet: string) => ({
      cniVersion: '1.0.0',
      name,
      plugins: [{ type: 'bridge', bridge: bridgeName, isGateway: true, ipMasq: false, ipam: { type: 'host-local', dataDir: ipamDir, ranges: [[{ subnet }]] } }],
    });
    // The first in lexical order is the pod network; the others must not be used.
    await fs.writeFile(path.join(confDir, '10-pods.conflist'), JSON.stringify(bridge('berth-cri-test', BRIDGE, '10.231.0.0/16')));
    await fs.writeFile(path.join(confDir, '20-later.conflist'), JSON.stringify(bridge('later', 'bcricni9', '10.231.99.0/24')));
    await fs.writeFile(path.join(confDir, '00-notes.txt'), 'not a network config');
    // A short path of its own: unix socket paths stop at 107 bytes.
    criDir = await fs.mkdtemp('/tmp/bn-');
    const socket = path.join(criDir, 'cri.sock');
    daemon = await startDaemon({ args: ['--cri-socket', socket], config: { cri: { cniConfDir: confDir, cniBinDir: '/usr/lib/cni' } } });
    cri = criClient(socket);
    await cri.image.PullImage({ image: { image } });
  }, 120_000);

  afterAll(async () => {
    cri?.close();
    if (daemon) {
      await daemon.removeAllContainers();
      await daemon.stop();
    }
    if (criDir) await fs.rm(criDir, { recursive: true, force: true });
    await registry?.stop();
    // The bridge is the host side CNI made; pods gone, it is only an address on the host.
    if (existsSync(`/sys/class/net/${BRIDGE}`)) execFileSync('ip', ['link', 'del', BRIDGE]);
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  it('is NetworkReady with the first config of the conf dir', async () => {
    const st = await cri.runtime.Status({ verbose: true });
    expect(st.status.conditions.find((c: any) => c.type === 'NetworkReady')).toMatchObject({ status: true, reason: '' });
    expect(JSON.parse(st.info.config).cniConfig).toBe(path.join(confDir, '10-pods.conflist'));
  });

  it('gives two pods addresses on the bridge; bytes sent from one to the other arrive; StopPodSandbox releases both', async () => {
    const pods: { id: string; ip: string }[] = [];
    for (const name of ['pod-a', 'pod-b']) {
      const id = (await cri.runtime.RunPodSandbox({ config: podConfig(name) })).pod_sandbox_id;
      const { status } = await cri.runtime.PodSandboxStatus({ pod_sandbox_id: id });
      expect(status.network.ip).toMatch(/^10\.231\.\d+\.\d+$/);
      pods.push({ id, ip: status.network.ip });
    }
    expect(pods[0].ip).not.toBe(pods[1].ip);
    expect(bridgePorts()).toHaveLength(2);
    expect(existsSync('/sys/class/net/bcricni9')).toBe(false);

    const run = async (pod: { id: string }, name: string, args: string[]) => {
      const { container_id } = await cri.runtime.CreateContainer({
        pod_sandbox_id: pod.id,
        config: { metadata: { name, attempt: 0 }, image: { image }, command: ['/bin/busybox'], args, linux: {} },
        sandbox_config: {},
      });
      await cri.runtime.StartContainer({ container_id });
      return container_id;
    };
    // A listens; B sends once A's port takes connections (nc fails while it is refused).
    const listener = await run(pods[0], 'listener', ['sh', '-c', `while :; do nc -l -p ${PORT} >> /received; done`]);
    const sender = await run(pods[1], 'sender', ['sleep', '3600']);
    const sent = await cri.runtime.ExecSync({ container_id: sender, cmd: ['sh', '-c', `until echo bytes-from-b | nc ${pods[0].ip} ${PORT}; do sleep 0.2; done`], timeout: 60 });
    expect(sent.exit_code).toBe(0);
    await until(
      'the bytes in pod A',
      async () => {
        const got = await cri.runtime.ExecSync({ container_id: listener, cmd: ['cat', '/received'], timeout: 10 });
        return got.stdout.toString().includes('bytes-from-b\n') || undefined;
      },
      30_000,
    );

    const reserved = () => fs.readdir(path.join(ipamDir, 'berth-cri-test')).then((f) => f.filter((n) => /^\d+\.\d+\.\d+\.\d+$/.test(n)).sort());
    expect(await reserved()).toEqual(pods.map((p) => p.ip).sort());
    for (const pod of pods) await cri.runtime.StopPodSandbox({ pod_sandbox_id: pod.id });
    expect(bridgePorts()).toEqual([]);
    expect(await reserved()).toEqual([]);
    for (const pod of pods) {
      expect((await cri.runtime.PodSandboxStatus({ pod_sandbox_id: pod.id })).status.network.ip).toBe('');
      // A second stop finds nothing left to delete.
      await cri.runtime.StopPodSandbox({ pod_sandbox_id: pod.id });
      await cri.runtime.RemovePodSandbox({ pod_sandbox_id: pod.id });
    }
  }, 120_000);

  it('makes the pause image again when it was removed (crictl rmi)', async () => {
    const pause = (await cri.image.ListImages({})).images.find((i: any) => i.repo_tags.some((t: string) => t.startsWith('berth.local/pause:')));
    expect(pause).toBeDefined();
    await cri.image.RemoveImage({ image: { image: pause.id } });
    const id = (await cri.runtime.RunPodSandbox({ config: podConfig('pod-again') })).pod_sandbox_id;
    expect((await cri.runtime.PodSandboxStatus({ pod_sandbox_id: id })).status).toMatchObject({ state: 'SANDBOX_READY', network: { ip: expect.stringMatching(/^10\.231\./) } });
    await cri.runtime.StopPodSandbox({ pod_sandbox_id: id });
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: id });
    expect(bridgePorts()).toEqual([]);
  }, 60_000);

  it('proxies a pod host port to the pod IP when the config has no portmap, and closes it with the pod', async () => {
    const hostPort = await new Promise<number>((resolve) => {
      const probe = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as net.AddressInfo;
        probe.close(() => resolve(port));
      });
    });
    const config = { ...podConfig('pod-port'), port_mappings: [{ protocol: 'TCP', container_port: PORT, host_port: hostPort, host_ip: '127.0.0.1' }] };
    const id = (await cri.runtime.RunPodSandbox({ config })).pod_sandbox_id;
    const { container_id } = await cri.runtime.CreateContainer({
      pod_sandbox_id: id,
      config: { metadata: { name: 'listener', attempt: 0 }, image: { image }, command: ['/bin/busybox'], args: ['sh', '-c', `while :; do nc -l -p ${PORT} >> /received; done`], linux: {} },
      sandbox_config: config,
    });
    await cri.runtime.StartContainer({ container_id });
    // Until the listener is up, the proxy's connection to the pod is refused and the client's closes.
    await until(
      'the bytes through the host port',
      async () => {
        await new Promise<void>((resolve) => {
          const c = net.connect({ host: '127.0.0.1', port: hostPort }, () => c.end('via the host port\n'));
          c.on('close', () => resolve());
          c.on('error', () => undefined);
        });
        const got = await cri.runtime.ExecSync({ container_id, cmd: ['cat', '/received'], timeout: 10 });
        return got.stdout.toString().includes('via the host port\n') || undefined;
      },
      30_000,
    );
    await cri.runtime.StopPodSandbox({ pod_sandbox_id: id });
    const refused = await new Promise<string>((resolve) => {
      const c = net.connect({ host: '127.0.0.1', port: hostPort }, () => (c.destroy(), resolve('connected')));
      c.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    });
    expect(refused).toBe('ECONNREFUSED');
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: id });
  }, 60_000);
});
