/**
 * berthd as a Kubernetes runtime (root): a gRPC client built from the project's own proto drives
 * the CRI socket end to end — images from a real registry, a pod whose two containers share
 * localhost and hostname, ExecSync, CRI-format logs, label filters, state after a berthd restart,
 * and nothing left on the host afterwards.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newLaunchPlan } from '../../core/launcher/plan';
import { buildSpec } from '../../plugins/runtime-oci/spec';
import { criClient } from '../helpers/cri';
import { mountsUnder, startDaemon, type RunningDaemon } from '../helpers/daemon';
import { isRoot, until, hasCni, cniReason } from '../helpers/env';
import { makeTempDir, pushBusybox } from '../helpers/fixtures';
import { startRegistry, type RunningRegistry } from '../helpers/registry';

/** Processes whose command line names this test's root (monitors, pause, containers). */
function processesUnder(root: string, except: number): string[] {
  return execFileSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.includes(root) && Number(l.trim().split(' ')[0]) !== except);
}

describe.skipIf(!isRoot || !hasCni)(`CRI server (${cniReason})`, () => {
  let registry: RunningRegistry;
  let first: RunningDaemon;
  let daemon: RunningDaemon;
  let cri: ReturnType<typeof criClient>;
  let image: string;
  let logDir: string;
  const netnsBefore = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });

  const criSocket = (d: string) => path.join(d, 'cri.sock');
  const podConfig = (name: string) => ({
    metadata: { name, uid: `uid-${name}`, namespace: 'default', attempt: 0 },
    hostname: `${name}-host`,
    log_directory: path.join(logDir, name),
    dns_config: { servers: ['10.96.0.10'], searches: ['default.svc.cluster.local'], options: ['ndots:5'] },
    labels: { app: name, tier: 'test' },
    annotations: { 'example.com/note': `pod ${name}` },
    linux: {},
  });
  const containerConfig = (name: string, args: string[], labels: Record<string, string> = {}) => ({
    metadata: { name, attempt: 0 },
    image: { image },
    command: ['/bin/busybox'],
    args,
    labels: { container: name, ...labels },
    annotations: { 'example.com/c': name },
    log_path: `${name}/0.log`,
    linux: {},
  });

  let criDir: string;
  let socket: string;
  let sandboxId: string;
  let serverId: string;
  let clientId: string;
  let imageId: string;
  const timings: number[] = [];

  beforeAll(async () => {
    registry = await startRegistry();
    await pushBusybox(registry.host, 'test/busybox:latest');
    image = `${registry.host}/test/busybox:latest`;
    logDir = await makeTempDir('berth-cri-logs-');
    // A short path of its own: unix socket paths stop at 107 bytes.
    criDir = await fs.mkdtemp('/tmp/bc-');
    socket = path.join(criDir, 'cri.sock');
    // criDir holds no CNI config: pods go on berth's own network (the CNI way is cri-cni.test.ts).
    first = daemon = await startDaemon({ args: ['--cri-socket', socket], config: { cri: { cniConfDir: criDir } } });
    cri = criClient(socket);
  }, 120_000);

  afterAll(async () => {
    cri?.close();
    if (daemon) await daemon.removeAllContainers();
    if (daemon && daemon !== first) await daemon.stop();
    await first?.stop(); // removes the shared root
    await registry?.stop();
    if (logDir) await fs.rm(logDir, { recursive: true, force: true });
    if (criDir) await fs.rm(criDir, { recursive: true, force: true });
  });

  it('answers Version and Status, on v1 and v1alpha2', async () => {
    const v = await cri.runtime.Version({ version: '0.1.0' });
    expect(v).toMatchObject({ runtime_name: 'berth', runtime_api_version: 'v1' });
    const old = criClient(socket, 'v1alpha2');
    try {
      expect(await old.runtime.Version({})).toMatchObject({ runtime_name: 'berth', runtime_api_version: 'v1alpha2' });
    } finally {
      old.close();
    }
    const st = await cri.runtime.Status({});
    const conds = Object.fromEntries(st.status.conditions.map((c: any) => [c.type, c.status]));
    expect(conds).toEqual({ RuntimeReady: true, NetworkReady: false });
    // containerd's words for a conf dir without a network config.
    expect(st.status.conditions[1]).toMatchObject({
      reason: 'NetworkPluginNotReady',
      message: expect.stringContaining(`cni config uninitialized: no network config (.conf, .conflist, .json) in ${criDir}`),
    });
    expect(await daemon.cli(['info'])).toMatchObject({ code: 0 });
    expect((await daemon.cli(['info'])).stdout).toContain(`CRI: ${socket}`);
    // CRI 1.28's RuntimeConfig: kubelet takes its cgroup driver from here.
    expect(await cri.runtime.RuntimeConfig({})).toEqual({ linux: { cgroup_driver: 'CGROUPFS' } });
  });

  it('serves clients that send the socket path as :authority (gRPC-Go before 1.53: crictl, kubelet 1.26)', async () => {
    const goStyle = criClient(socket, 'v1', { 'grpc.default_authority': socket });
    try {
      expect(await goStyle.runtime.Version({})).toMatchObject({ runtime_name: 'berth' });
      // Several calls on one connection: the header blocks stay decodable after the rewrite.
      for (let i = 0; i < 3; i++) expect((await goStyle.runtime.Status({})).status.conditions).toHaveLength(2);
    } finally {
      goStyle.close();
    }
  });

  it('refuses bad requests with a clear error and keeps serving', async () => {
    await expect(cri.runtime.RunPodSandbox({ config: { hostname: 'x' } })).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: expect.stringMatching(/config\.metadata: name, uid and namespace/),
    });
    await expect(cri.runtime.CreateContainer({ pod_sandbox_id: 'nope', config: {} })).rejects.toMatchObject({
      code: grpc.status.NOT_FOUND,
      details: expect.stringMatching(/pod sandbox nope not found/),
    });
    await expect(cri.runtime.ContainerStatus({ container_id: '' })).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    await expect(cri.image.PullImage({ image: { image: 'UPPER/Case' } })).rejects.toMatchObject({ details: expect.stringMatching(/UPPER\/Case/) });
    expect(await cri.runtime.Version({})).toMatchObject({ runtime_name: 'berth' });
  });

  it('pulls from a registry and lists, inspects and finds images by full reference', async () => {
    const pulled = await cri.image.PullImage({ image: { image } });
    expect(pulled.image_ref).toMatch(/^sha256:[0-9a-f]{64}$/);
    imageId = pulled.image_ref;
    const list = await cri.image.ListImages({});
    const mine = list.images.find((i: any) => i.id === imageId);
    expect(mine.repo_tags).toContain(`${registry.host}/test/busybox:latest`);
    expect(mine.repo_digests[0]).toMatch(new RegExp(`^${registry.host}/test/busybox@sha256:`));
    expect(Number(mine.size)).toBeGreaterThan(0);
    expect(mine.pinned).toBe(false);
    const filtered = await cri.image.ListImages({ filter: { image: { image } } });
    expect(filtered.images.map((i: any) => i.id)).toEqual([imageId]);
    const status = await cri.image.ImageStatus({ image: { image: imageId }, verbose: true });
    expect(status.image.id).toBe(imageId);
    expect(JSON.parse(status.info.info).imageSpec.rootfs.type).toBe('layers');
    expect((await cri.image.ImageStatus({ image: { image: 'docker.io/library/nothere:1' } })).image).toBeNull();
    // The Docker API sees the same image.
    expect((await daemon.api(`/images/${imageId}/json`)).status).toBe(200);
    const fsInfo = await cri.image.ImageFsInfo({});
    expect(Number(fsInfo.image_filesystems[0].used_bytes.value)).toBeGreaterThan(0);
  });

  it('runs a pod whose containers share localhost and hostname, with its IP, DNS and CRI logs', async () => {
    const t0 = performance.now();
    sandboxId = (await cri.runtime.RunPodSandbox({ config: podConfig('web') })).pod_sandbox_id;
    serverId = (
      await cri.runtime.CreateContainer({
        pod_sandbox_id: sandboxId,
        config: containerConfig('server', ['sh', '-c', 'echo serving; echo oops >&2; nc -l -p 8080 -e echo hello-from-server; sleep 3600'], { role: 'server' }),
        sandbox_config: podConfig('web'),
      })
    ).container_id;
    await cri.runtime.StartContainer({ container_id: serverId });
    timings.push(performance.now() - t0);

    const pod = await cri.runtime.PodSandboxStatus({ pod_sandbox_id: sandboxId, verbose: true });
    expect(pod.status).toMatchObject({ id: sandboxId, state: 'SANDBOX_READY', labels: { app: 'web', tier: 'test' }, annotations: { 'example.com/note': 'pod web' } });
    expect(pod.status.metadata).toMatchObject({ name: 'web', uid: 'uid-web', namespace: 'default' });
    expect(pod.status.network.ip).toMatch(/^\d+\.\d+\.\d+\.\d+$/);

    clientId = (
      await cri.runtime.CreateContainer({
        pod_sandbox_id: sandboxId,
        config: containerConfig('client', ['sleep', '3600'], { role: 'client' }),
        sandbox_config: podConfig('web'),
      })
    ).container_id;
    expect((await cri.runtime.ContainerStatus({ container_id: clientId })).status.state).toBe('CONTAINER_CREATED');
    await cri.runtime.StartContainer({ container_id: clientId });

    const st = await cri.runtime.ContainerStatus({ container_id: clientId, verbose: true });
    expect(st.status).toMatchObject({
      id: clientId,
      state: 'CONTAINER_RUNNING',
      labels: { container: 'client', role: 'client' },
      image_id: imageId,
      log_path: path.join(logDir, 'web', 'client/0.log'),
    });
    expect(BigInt(st.status.started_at)).toBeGreaterThan(0n);

    // Both containers are in the sandbox's network, IPC and UTS namespaces (not the host's).
    const podPid = JSON.parse(pod.info.info).pid;
    for (const ns of ['net', 'ipc', 'uts']) {
      const podNs = await fs.readlink(`/proc/${podPid}/ns/${ns}`);
      expect(podNs).not.toBe(await fs.readlink(`/proc/self/ns/${ns}`));
      for (const id of [serverId, clientId]) {
        const r = await cri.runtime.ExecSync({ container_id: id, cmd: ['readlink', `/proc/self/ns/${ns}`], timeout: 5 });
        expect(r.stdout.toString().trim()).toBe(podNs);
      }
    }
    // One network namespace: the client reaches the server on the pod's loopback.
    const got = await until('server listening', async () => {
      const r = await cri.runtime.ExecSync({ container_id: clientId, cmd: ['/bin/busybox', 'nc', '127.0.0.1', '8080'], timeout: 5 });
      return r.stdout.toString().includes('hello-from-server') ? r : undefined;
    });
    expect(got.exit_code).toBe(0);
    // One UTS namespace and the sandbox's resolv.conf.
    for (const id of [serverId, clientId]) {
      expect((await cri.runtime.ExecSync({ container_id: id, cmd: ['hostname'], timeout: 5 })).stdout.toString()).toBe('web-host\n');
      const resolv = (await cri.runtime.ExecSync({ container_id: id, cmd: ['cat', '/etc/resolv.conf'], timeout: 5 })).stdout.toString();
      expect(resolv).toContain('nameserver 10.96.0.10');
      expect(resolv).toContain('search default.svc.cluster.local');
    }
    const ip = (await cri.runtime.ExecSync({ container_id: clientId, cmd: ['/bin/busybox', 'ip', '-4', 'addr'], timeout: 5 })).stdout.toString();
    expect(ip).toContain(pod.status.network.ip);

    // ExecSync: exit code, stderr, timeout.
    const fail = await cri.runtime.ExecSync({ container_id: clientId, cmd: ['sh', '-c', 'echo out; echo err >&2; exit 3'], timeout: 5 });
    expect({ out: fail.stdout.toString(), err: fail.stderr.toString(), code: fail.exit_code }).toEqual({ out: 'out\n', err: 'err\n', code: 3 });
    const t = performance.now();
    await expect(cri.runtime.ExecSync({ container_id: clientId, cmd: ['sleep', '30'], timeout: 1 })).rejects.toMatchObject({ code: grpc.status.DEADLINE_EXCEEDED });
    expect(performance.now() - t).toBeLessThan(5000);

    // Logs in the CRI format kubelet reads.
    const logFile = path.join(logDir, 'web', 'server/0.log');
    const log = await until('CRI log', async () => {
      const text = await fs.readFile(logFile, 'utf8').catch(() => '');
      return text.includes('oops') && text.includes('serving') ? text : undefined;
    });
    const lines = log.trim().split('\n');
    for (const l of lines) expect(l).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z (stdout|stderr) [FP] /);
    expect(lines).toContainEqual(expect.stringMatching(/ stdout F serving$/));
    expect(lines).toContainEqual(expect.stringMatching(/ stderr F oops$/));
  }, 60_000);

  it('gives Docker API users --network/--ipc container:<name> too', async () => {
    const create = async (name: string, hostConfig: object) => {
      const r = await daemon.api(`/containers/create?name=${name}`, { method: 'POST', body: { Image: image, Cmd: ['sleep', '60'], Hostname: 'holder-host', HostConfig: hostConfig } });
      expect(r.status, r.body).toBe(201);
      expect((await daemon.api(`/containers/${name}/start`, { method: 'POST' })).status).toBe(204);
      return r.json.Id as string;
    };
    const holder = await create('ns-holder', {});
    await create('ns-joiner', { NetworkMode: 'container:ns-holder', IpcMode: 'container:ns-holder', UTSMode: 'container:ns-holder' });
    try {
      const inspect = (await daemon.api('/containers/ns-joiner/json')).json;
      expect(inspect.HostConfig.NetworkMode).toBe(`container:${holder}`);
      const holderPid = (await daemon.api('/containers/ns-holder/json')).json.State.Pid;
      const joinerPid = inspect.State.Pid;
      for (const ns of ['net', 'ipc', 'uts']) expect(await fs.readlink(`/proc/${joinerPid}/ns/${ns}`)).toBe(await fs.readlink(`/proc/${holderPid}/ns/${ns}`));
      expect(await fs.readlink(`/proc/${joinerPid}/ns/pid`)).not.toBe(await fs.readlink(`/proc/${holderPid}/ns/pid`));
      const bad = await daemon.api('/containers/create', { method: 'POST', body: { Image: image, Cmd: ['true'], HostConfig: { NetworkMode: 'container:no-such-one' } } });
      expect(bad.status).toBe(404);
    } finally {
      await daemon.api('/containers/ns-joiner?force=1', { method: 'DELETE' });
      await daemon.api('/containers/ns-holder?force=1', { method: 'DELETE' });
    }
  }, 60_000);

  it('filters pods and containers by id, state and labels', async () => {
    // A second pod, with the pause image already made: the steady-state latency.
    const t0 = performance.now();
    const other = (await cri.runtime.RunPodSandbox({ config: podConfig('other') })).pod_sandbox_id;
    try {
      const c = (await cri.runtime.CreateContainer({ pod_sandbox_id: other, config: containerConfig('idle', ['sleep', '60']), sandbox_config: podConfig('other') })).container_id;
      await cri.runtime.StartContainer({ container_id: c });
      timings.push(performance.now() - t0);
      // The sandbox image is pinned, as containerd's is, so kubelet's image GC keeps it.
      const pause = (await cri.image.ListImages({})).images.find((i: any) => i.repo_tags.some((t: string) => t.startsWith('berth.local/pause:')));
      expect(pause?.pinned).toBe(true);
      const pods = async (filter: object) => (await cri.runtime.ListPodSandbox({ filter })).items.map((p: any) => p.id).sort();
      expect(await pods({ label_selector: { app: 'web' } })).toEqual([sandboxId]);
      expect(await pods({ label_selector: { tier: 'test' } })).toEqual([sandboxId, other].sort());
      expect(await pods({ id: other.slice(0, 12) })).toEqual([other]);
      expect(await pods({ state: { state: 'SANDBOX_READY' }, label_selector: { app: 'nope' } })).toEqual([]);
      const ctrs = async (filter: object) => (await cri.runtime.ListContainers({ filter })).containers.map((c: any) => c.id).sort();
      expect(await ctrs({ label_selector: { role: 'server' } })).toEqual([serverId]);
      expect(await ctrs({ pod_sandbox_id: sandboxId })).toEqual([serverId, clientId].sort());
      expect(await ctrs({ pod_sandbox_id: other })).toEqual([c]);
      expect(await ctrs({ state: { state: 'CONTAINER_EXITED' } })).toEqual([]);
      expect(await ctrs({ state: { state: 'CONTAINER_RUNNING' }, label_selector: { container: 'idle' } })).toEqual([c]);
      // Docker API containers are not CRI containers.
      expect((await cri.runtime.ListContainers({})).containers.every((c: any) => c.pod_sandbox_id)).toBe(true);
    } finally {
      await cri.runtime.StopPodSandbox({ pod_sandbox_id: other });
      await cri.runtime.RemovePodSandbox({ pod_sandbox_id: other });
    }
    await expect(cri.runtime.PodSandboxStatus({ pod_sandbox_id: other })).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
  }, 60_000);

  it('knows its pods and containers after a berthd restart, and logs go on', async () => {
    cri.close();
    await first.kill9();
    daemon = await startDaemon({ root: first.root, args: ['--cri-socket', socket], config: { cri: { cniConfDir: criDir } } });
    cri = criClient(socket);
    const pods = (await cri.runtime.ListPodSandbox({ filter: { label_selector: { app: 'web' } } })).items;
    expect(pods.map((p: any) => [p.id, p.state])).toEqual([[sandboxId, 'SANDBOX_READY']]);
    const ctrs = (await cri.runtime.ListContainers({ filter: { pod_sandbox_id: sandboxId } })).containers;
    expect(ctrs.map((c: any) => [c.id, c.state]).sort()).toEqual(
      [
        [serverId, 'CONTAINER_RUNNING'],
        [clientId, 'CONTAINER_RUNNING'],
      ].sort(),
    );
    expect((await cri.runtime.ContainerStatus({ container_id: clientId })).status.metadata).toMatchObject({ name: 'client' });
    // Output after the restart reaches the CRI log once.
    await cri.runtime.ExecSync({ container_id: serverId, cmd: ['sh', '-c', 'echo after-restart > /proc/1/fd/1'], timeout: 5 });
    const logFile = path.join(logDir, 'web', 'server/0.log');
    const log = await until('log after restart', async () => {
      const text = await fs.readFile(logFile, 'utf8');
      return text.includes('after-restart') ? text : undefined;
    });
    expect(log.match(/ serving$/gm)).toHaveLength(1);
  }, 60_000);

  it('updates resources and reopens a rotated log', async () => {
    await cri.runtime.UpdateContainerResources({ container_id: serverId, linux: { memory_limit_in_bytes: 64 * 1024 * 1024 } });
    const dir = execFileSync('find', ['/sys/fs/cgroup/memory', '-maxdepth', '8', '-type', 'd', '-name', serverId], { encoding: 'utf8' }).trim();
    expect(dir, 'the container memory cgroup').not.toBe('');
    expect(Number(await fs.readFile(path.join(dir, 'memory.limit_in_bytes'), 'utf8'))).toBe(64 * 1024 * 1024);
    const logFile = path.join(logDir, 'web', 'server/0.log');
    await fs.rename(logFile, `${logFile}.1`);
    await cri.runtime.ReopenContainerLog({ container_id: serverId });
    await cri.runtime.ExecSync({ container_id: serverId, cmd: ['sh', '-c', 'echo after-rotation > /proc/1/fd/1'], timeout: 5 });
    const fresh = await until('log after rotation', async () => {
      const text = await fs.readFile(logFile, 'utf8').catch(() => '');
      return text.includes('after-rotation') ? text : undefined;
    });
    expect(fresh).not.toContain('serving');
    await expect(cri.runtime.ReopenContainerLog({ container_id: 'f'.repeat(64) })).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
  }, 30_000);

  it('stops and removes containers and the pod, and leaves nothing behind', async () => {
    // `sleep` at pid 1 ignores SIGTERM: after the timeout comes SIGKILL.
    const t0 = performance.now();
    await cri.runtime.StopContainer({ container_id: clientId, timeout: 1 });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(1000);
    const st = await cri.runtime.ContainerStatus({ container_id: clientId });
    expect(st.status).toMatchObject({ state: 'CONTAINER_EXITED', reason: 'Error', exit_code: 137 });
    expect(BigInt(st.status.finished_at)).toBeGreaterThan(BigInt(st.status.started_at));
    await cri.runtime.RemoveContainer({ container_id: clientId });
    await cri.runtime.RemoveContainer({ container_id: clientId }); // idempotent
    await cri.runtime.StopPodSandbox({ pod_sandbox_id: sandboxId });
    expect((await cri.runtime.PodSandboxStatus({ pod_sandbox_id: sandboxId })).status.state).toBe('SANDBOX_NOTREADY');
    expect((await cri.runtime.ContainerStatus({ container_id: serverId })).status.state).toBe('CONTAINER_EXITED');
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: sandboxId });
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: sandboxId });
    expect((await cri.runtime.ListContainers({})).containers).toEqual([]);
    expect((await cri.runtime.ListPodSandbox({})).items).toEqual([]);

    await cri.image.RemoveImage({ image: { image: imageId } });
    expect((await cri.image.ImageStatus({ image: { image: imageId } })).image).toBeNull();
    await cri.image.RemoveImage({ image: { image: imageId } }); // idempotent

    expect(mountsUnder(first.root)).toEqual([]);
    expect(processesUnder(first.root, daemon.pid)).toEqual([]);
    expect(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })).toBe(netnsBefore);
    // No cgroup of any pod container or sandbox is left (v1 memory hierarchy and the v2 mount).
    for (const id of [sandboxId, serverId, clientId]) {
      for (const top of ['/sys/fs/cgroup/memory', '/sys/fs/cgroup/unified', '/sys/fs/cgroup']) {
        if (!existsSync(top)) continue;
        const hits = execFileSync('find', [top, '-maxdepth', '8', '-type', 'd', '-name', `*${id.slice(0, 12)}*`], { encoding: 'utf8' }).trim();
        expect(hits, `cgroups of ${id}`).toBe('');
      }
    }
    console.log(`RunPodSandbox+CreateContainer+StartContainer: ${timings.map((t) => `${t.toFixed(0)} ms`).join(', ')}`);
  }, 60_000);
});

describe('shared namespaces in the OCI runtime spec', () => {
  it('joins the namespaces of a container:<id> mode by path', () => {
    const plan = newLaunchPlan('/rootfs', { args: ['true'], env: [], cwd: '/', uid: 0, gid: 0, additionalGids: [] });
    plan.namespaces = ['mount', 'pid'];
    plan.enterNamespaces = { net: '/proc/42/ns/net', ipc: '/proc/42/ns/ipc', uts: '/proc/42/ns/uts' };
    expect(buildSpec(plan).linux.namespaces).toEqual([
      { type: 'mount' },
      { type: 'pid' },
      { type: 'network', path: '/proc/42/ns/net' },
      { type: 'ipc', path: '/proc/42/ns/ipc' },
      { type: 'uts', path: '/proc/42/ns/uts' },
    ]);
  });
});
