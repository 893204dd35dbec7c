/**
 * The CRI's streaming and stats calls as kubelet makes them (root): Exec and PortForward answer a
 * URL, the client upgrades it to SPDY/3.1 and speaks remotecommand v4 / port-forward on it (the
 * client is spdy-transport, not berth's code); a pod's echo server on a port answers through the
 * forward; ContainerStats and PodSandboxStats carry the cgroup readings; a pod with pid=POD shares
 * one pid namespace with pause as its init, and its sysctls are set in its own namespaces.
 */
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { channelWebSocket, collect, criClient, upgradeToSpdy } from '../helpers/cri';
import { startDaemon, type RunningDaemon } from '../helpers/daemon';
import { isRoot, until, hasCni, cniReason } from '../helpers/env';
import { pushBusybox } from '../helpers/fixtures';
import { startRegistry, type RunningRegistry } from '../helpers/registry';

/** A process's memory cgroup and where that hierarchy is mounted (v1's memory line, else v2's). */
function memoryCgroup(pid: number): { path: string; mount: string } {
  const lines = readFileSync(`/proc/${pid}/cgroup`, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(':'));
  const v1 = lines.find(([, ctrls]) => ctrls.split(',').includes('memory'));
  if (v1) return { path: v1[2], mount: '/sys/fs/cgroup/memory' };
  return { path: lines.find(([id]) => id === '0')![2], mount: '/sys/fs/cgroup' };
}

describe.skipIf(!isRoot || !hasCni)(`CRI streaming, stats, pid=POD and sysctls (${cniReason})`, () => {
  let registry: RunningRegistry;
  let daemon: RunningDaemon;
  let cri: ReturnType<typeof criClient>;
  let criDir: string;
  let sandboxId: string;
  let echoId: string;
  let image: string;

  beforeAll(async () => {
    registry = await startRegistry();
    await pushBusybox(registry.host, 'test/busybox:latest');
    image = `${registry.host}/test/busybox:latest`;
    // A short path of its own: unix socket paths stop at 107 bytes.
    criDir = await fs.mkdtemp('/tmp/bs-');
    const socket = path.join(criDir, 'cri.sock');
    // No CNI config in criDir: the pod is on berth's own network.
    daemon = await startDaemon({ args: ['--cri-socket', socket], config: { cri: { cniConfDir: criDir } } });
    cri = criClient(socket);
    await cri.image.PullImage({ image: { image } });
    const podConfig = { metadata: { name: 'stream', uid: 'uid-stream', namespace: 'default', attempt: 0 }, linux: {} };
    sandboxId = (await cri.runtime.RunPodSandbox({ config: podConfig })).pod_sandbox_id;
    // An echo server on port 8080: each connection gets `cat` on its socket.
    const created = await cri.runtime.CreateContainer({
      pod_sandbox_id: sandboxId,
      config: { metadata: { name: 'echo', attempt: 0 }, image: { image }, command: ['/bin/busybox'], args: ['nc', '-ll', '-p', '8080', '-e', '/bin/busybox', 'cat'], linux: {} },
      sandbox_config: podConfig,
    });
    echoId = created.container_id;
    await cri.runtime.StartContainer({ container_id: echoId });
  }, 120_000);

  afterAll(async () => {
    if (sandboxId) await cri.runtime.RemovePodSandbox({ pod_sandbox_id: sandboxId }).catch(() => undefined);
    cri?.close();
    await daemon?.stop();
    await registry?.stop();
    if (criDir) await fs.rm(criDir, { recursive: true, force: true });
  });

  it('Exec: stdin reaches the command, stdout and stderr come back apart, the exit code in the status', async () => {
    const { url } = await cri.runtime.Exec({ container_id: echoId, cmd: ['/bin/busybox', 'sh', '-c', 'cat; echo to-stderr >&2; exit 7'], stdin: true, stdout: true, stderr: true });
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/exec\//);
    const session = await upgradeToSpdy(url, 'v4.channel.k8s.io');
    const error = collect(session.open({ streamtype: 'error' }));
    const stdin = session.open({ streamtype: 'stdin' });
    const stdout = collect(session.open({ streamtype: 'stdout' }));
    const stderr = collect(session.open({ streamtype: 'stderr' }));
    stdin.write('line one\n');
    stdin.end('line two\n');
    expect(await stdout).toBe('line one\nline two\n');
    expect(await stderr).toBe('to-stderr\n');
    const status = JSON.parse(await error);
    expect(status).toMatchObject({ status: 'Failure', reason: 'NonZeroExitCode', details: { causes: [{ reason: 'ExitCode', message: '7' }] } });
    session.socket.destroy();
  });

  it('Exec with a terminal: the command sees a tty of the size the client sent', async () => {
    const { url } = await cri.runtime.Exec({ container_id: echoId, cmd: ['/bin/busybox', 'sh', '-c', 'read go; /bin/busybox stty size; /bin/busybox tty'], stdin: true, stdout: true, tty: true });
    const session = await upgradeToSpdy(url, 'v4.channel.k8s.io');
    const error = collect(session.open({ streamtype: 'error' }));
    const stdin = session.open({ streamtype: 'stdin' });
    const stdout = collect(session.open({ streamtype: 'stdout' }));
    const resize = session.open({ streamtype: 'resize' });
    // Sent before the line the command waits for, so stty sees it.
    resize.write(JSON.stringify({ Width: 91, Height: 33 }));
    stdin.write('go\r');
    const out = await stdout;
    expect(out).toMatch(/33 91/);
    expect(out).toMatch(/\/dev\/pts\/\d+/);
    expect(JSON.parse(await error)).toEqual({ metadata: {}, status: 'Success' });
    session.socket.destroy();
  });

  it('Exec over a WebSocket (v5.channel.k8s.io): stdin and its close, stdout and stderr apart, the exit code', async () => {
    const { url } = await cri.runtime.Exec({ container_id: echoId, cmd: ['/bin/busybox', 'sh', '-c', 'cat; echo to-stderr >&2; exit 7'], stdin: true, stdout: true, stderr: true });
    const ws = await channelWebSocket(url, ['v5.channel.k8s.io', 'v4.channel.k8s.io']);
    expect(ws.protocol).toBe('v5.channel.k8s.io');
    ws.send(0, 'line one\n');
    ws.send(0, 'line two\n');
    // cat ends only on stdin's EOF, which only v5 can send.
    ws.closeChannel(0);
    const got = await ws.done;
    expect(ws.order[0]).toBe(1);
    expect(got[1]).toBe('line one\nline two\n');
    expect(got[2]).toBe('to-stderr\n');
    expect(JSON.parse(got[3])).toMatchObject({ status: 'Failure', reason: 'NonZeroExitCode', details: { causes: [{ reason: 'ExitCode', message: '7' }] } });
  });

  it('Exec over a WebSocket (v4.channel.k8s.io) with a terminal: the size from the resize channel', async () => {
    const { url } = await cri.runtime.Exec({ container_id: echoId, cmd: ['/bin/busybox', 'sh', '-c', 'read go; /bin/busybox stty size'], stdin: true, stdout: true, tty: true });
    const ws = await channelWebSocket(url, ['v4.channel.k8s.io']);
    expect(ws.protocol).toBe('v4.channel.k8s.io');
    ws.send(4, JSON.stringify({ Width: 101, Height: 27 }));
    ws.send(0, 'go\r');
    const got = await ws.done;
    expect(got[1]).toMatch(/27 101/);
    expect(JSON.parse(got[3])).toEqual({ metadata: {}, status: 'Success' });
  });

  it('a WebSocket offering none of v5/v4.channel.k8s.io is refused by name, and the URL stays unused', async () => {
    const { url } = await cri.runtime.Exec({ container_id: echoId, cmd: ['/bin/busybox', 'echo', 'still here'], stdout: true });
    await expect(channelWebSocket(url, ['channel.k8s.io'])).rejects.toMatchObject({
      status: 403,
      body: expect.stringMatching(/offered WebSocket subprotocols \(channel\.k8s\.io\) is v5\.channel\.k8s\.io or v4\.channel\.k8s\.io/),
    });
    const ws = await channelWebSocket(url, ['v4.channel.k8s.io']);
    const got = await ws.done;
    expect(got[1]).toBe('still here\n');
    expect(JSON.parse(got[3])).toEqual({ metadata: {}, status: 'Success' });
  });

  it('PortForward over a WebSocket (v4.channel.k8s.io): the port announced on both channels, bytes to the pod port and back', async () => {
    const { url } = await cri.runtime.PortForward({ pod_sandbox_id: sandboxId, port: [8080] });
    const ws = await channelWebSocket(`${url}?ports=8080`, ['v4.channel.k8s.io']);
    expect(ws.protocol).toBe('v4.channel.k8s.io');
    const port = Buffer.from([8080 & 0xff, 8080 >> 8]);
    await until('the port on both channels', () => (ws.received[0]?.length && ws.received[1]?.length) || undefined);
    expect(ws.received[0].subarray(0, 2)).toEqual(port);
    expect(ws.received[1]).toEqual(port);
    ws.send(0, 'through a websocket\n');
    await until('the echo', () => ws.received[0].subarray(2).toString() === 'through a websocket\n' || undefined);
    ws.close();
    await ws.done;
    // A port the request does not name and the query does not either: refused before the upgrade.
    const none = await cri.runtime.PortForward({ pod_sandbox_id: sandboxId, port: [] });
    await expect(channelWebSocket(none.url, ['v4.channel.k8s.io'])).rejects.toMatchObject({ status: 400, body: expect.stringMatching(/needs the ports/) });
  });

  it('PortForward: bytes go to the pod port and back, two connections at once', async () => {
    const { url } = await cri.runtime.PortForward({ pod_sandbox_id: sandboxId, port: [8080] });
    const session = await upgradeToSpdy(url, 'portforward.k8s.io');
    const exchange = async (requestid: string, text: string) => {
      const error = collect(session.open({ streamtype: 'error', port: '8080', requestid }));
      const data = session.open({ streamtype: 'data', port: '8080', requestid });
      const echoed = new Promise<string>((resolve) => {
        let got = '';
        data.on('data', (c: Buffer) => {
          got += c.toString('utf8');
          if (got.length >= text.length) resolve(got);
        });
      });
      data.write(text);
      expect(await echoed).toBe(text);
      data.end();
      return error;
    };
    const [a, b] = await Promise.all([exchange('0', 'ping through the forward\n'), exchange('1', 'second connection\n')]);
    expect(await a).toBe('');
    expect(await b).toBe('');
    session.socket.destroy();
  });

  it('PortForward to a closed port: the error stream says so', async () => {
    const { url } = await cri.runtime.PortForward({ pod_sandbox_id: sandboxId, port: [8081] });
    const session = await upgradeToSpdy(url, 'portforward.k8s.io');
    const error = collect(session.open({ streamtype: 'error', port: '8081', requestid: '0' }));
    session.open({ streamtype: 'data', port: '8081', requestid: '0' });
    expect(await error).toMatch(/error forwarding port 8081 to the pod: .*ECONNREFUSED/);
    session.socket.destroy();
  });

  it('a streaming URL serves once; unknown tokens and other protocols are refused', async () => {
    const { url } = await cri.runtime.Exec({ container_id: echoId, cmd: ['true'], stdout: true });
    await expect(upgradeToSpdy(url, 'v5.channel.k8s.io')).rejects.toMatchObject({ status: 403 });
    const session = await upgradeToSpdy(url, 'v4.channel.k8s.io');
    session.socket.destroy();
    await expect(upgradeToSpdy(url, 'v4.channel.k8s.io')).rejects.toMatchObject({ status: 404 });
    await expect(cri.runtime.Exec({ container_id: echoId, cmd: [], stdout: true })).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    await expect(cri.runtime.PortForward({ pod_sandbox_id: 'nope' })).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
  });

  it('ContainerStats and PodSandboxStats: CPU time and memory from the cgroups', async () => {
    // Burn a little CPU so the reading is above zero.
    await cri.runtime.ExecSync({ container_id: echoId, cmd: ['/bin/busybox', 'sh', '-c', 'i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done'], timeout: 60 });
    const { stats } = await cri.runtime.ContainerStats({ container_id: echoId });
    expect(stats.attributes).toMatchObject({ id: echoId, metadata: { name: 'echo' } });
    expect(Number(stats.cpu.usage_core_nano_seconds.value)).toBeGreaterThan(0);
    expect(Number(stats.memory.working_set_bytes.value)).toBeGreaterThan(0);
    const listed = await cri.runtime.ListContainerStats({ filter: { pod_sandbox_id: sandboxId } });
    expect(listed.stats.map((s: any) => s.attributes.id)).toEqual([echoId]);
    const pod = await cri.runtime.PodSandboxStats({ pod_sandbox_id: sandboxId });
    expect(pod.stats.attributes.id).toBe(sandboxId);
    expect(pod.stats.linux.containers.map((c: any) => c.attributes.id)).toEqual([echoId]);
    expect(Number(pod.stats.linux.cpu.usage_core_nano_seconds.value)).toBeGreaterThanOrEqual(Number(stats.cpu.usage_core_nano_seconds.value));
    expect(Number(pod.stats.linux.process.process_count.value)).toBeGreaterThanOrEqual(2);
    const all = await cri.runtime.ListPodSandboxStats({});
    expect(all.stats.map((s: any) => s.attributes.id)).toContain(sandboxId);
  });

  it("cgroup_parent: the pod and its containers get cgroups in it, below berthd's own; the removed pod leaves none", async () => {
    const parent = '/kubepods/burstable/podcg';
    const podConfig = { metadata: { name: 'cgpod', uid: 'uid-cgpod', namespace: 'default', attempt: 0 }, linux: { cgroup_parent: parent } };
    const pod = (await cri.runtime.RunPodSandbox({ config: podConfig })).pod_sandbox_id;
    const { container_id } = await cri.runtime.CreateContainer({
      pod_sandbox_id: pod,
      config: { metadata: { name: 'sleeper', attempt: 0 }, image: { image }, command: ['/bin/busybox'], args: ['sleep', '3600'], linux: {} },
      sandbox_config: podConfig,
    });
    await cri.runtime.StartContainer({ container_id });
    const own = memoryCgroup(daemon.pid);
    const podDir = path.posix.join(own.path, 'berth', parent);
    const pausePid = JSON.parse((await cri.runtime.PodSandboxStatus({ pod_sandbox_id: pod, verbose: true })).info.info).pid;
    const sleeperPid = JSON.parse((await cri.runtime.ContainerStatus({ container_id, verbose: true })).info.info).pid;
    expect(memoryCgroup(pausePid).path).toBe(path.posix.join(podDir, pod));
    expect(memoryCgroup(sleeperPid).path).toBe(path.posix.join(podDir, container_id));
    await expect(cri.runtime.RunPodSandbox({ config: { ...podConfig, metadata: { ...podConfig.metadata, name: 'up' }, linux: { cgroup_parent: '/kubepods/../../escape' } } })).rejects.toMatchObject({
      details: expect.stringMatching(/HostConfig\.CgroupParent: expected a cgroup path/),
    });
    await cri.runtime.StopPodSandbox({ pod_sandbox_id: pod });
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: pod });
    expect(existsSync(path.posix.join(own.mount, own.path, 'berth', 'kubepods'))).toBe(false);
    expect(existsSync(path.posix.join(own.mount, own.path, 'berth'))).toBe(true);
  });

  it('pid=POD: the containers see pause as pid 1 and each other; pid=CONTAINER sees only itself; the pod sysctls are its own', async () => {
    // CRI NamespaceMode: POD = 0, CONTAINER = 1.
    const sysctls = { 'kernel.shm_rmid_forced': '1', 'fs.mqueue.msg_max': '42', 'net.ipv4.ip_unprivileged_port_start': '79' };
    const podConfig = { metadata: { name: 'pidpod', uid: 'uid-pidpod', namespace: 'default', attempt: 0 }, linux: { sysctls, security_context: { namespace_options: { pid: 'POD' } } } };
    const pod = (await cri.runtime.RunPodSandbox({ config: podConfig })).pod_sandbox_id;
    try {
      const run = async (name: string, pid: string) => {
        const { container_id } = await cri.runtime.CreateContainer({
          pod_sandbox_id: pod,
          config: {
            metadata: { name, attempt: 0 },
            image: { image },
            command: ['/bin/busybox'],
            args: ['sleep', `${name === 'shared' ? 3600 : 3601}`],
            linux: { security_context: { namespace_options: { pid } } },
          },
          sandbox_config: podConfig,
        });
        await cri.runtime.StartContainer({ container_id });
        return container_id;
      };
      const shared = await run('shared', 'POD');
      const own = await run('own', 'CONTAINER');
      const ps = async (id: string) => (await cri.runtime.ExecSync({ container_id: id, cmd: ['/bin/busybox', 'ps', '-o', 'pid,args'], timeout: 30 })).stdout.toString();
      const sharedView = await ps(shared);
      expect(sharedView).toMatch(/^\s*1 \/pause$/m);
      expect(sharedView).toMatch(/sleep 3600/);
      const ownView = await ps(own);
      expect(ownView).toMatch(/^\s*1 \/bin\/busybox sleep 3601$/m);
      expect(ownView).not.toMatch(/pause|sleep 3600/);
      // The pod's sysctls, seen from a container: its IPC and network namespaces are the pod's.
      for (const [key, value] of Object.entries(sysctls)) {
        const read = await cri.runtime.ExecSync({ container_id: own, cmd: ['/bin/busybox', 'cat', `/proc/sys/${key.replace(/\./g, '/')}`], timeout: 30 });
        expect(read.stdout.toString().trim()).toBe(value);
      }
      const hostValue = (await fs.readFile('/proc/sys/fs/mqueue/msg_max', 'utf8')).trim();
      expect(hostValue).not.toBe('42');
    } finally {
      await cri.runtime.RemovePodSandbox({ pod_sandbox_id: pod });
    }
  });

  it('refuses sysctls that are not namespaced, and leaves no sandbox behind', async () => {
    const before = (await cri.runtime.ListPodSandbox({})).items.length;
    const config = { metadata: { name: 'badsysctl', uid: 'uid-bad', namespace: 'default', attempt: 0 }, linux: { sysctls: { 'kernel.panic': '1' } } };
    await expect(cri.runtime.RunPodSandbox({ config })).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringMatching(/kernel\.panic is not a namespaced sysctl/) });
    expect((await cri.runtime.ListPodSandbox({})).items.length).toBe(before);
  });
});
