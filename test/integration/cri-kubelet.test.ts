/**
 * What a real kubelet (1.20, runtime.v1alpha2) asks of the CRI beyond critest (root): every
 * container it creates binds two host files, its pod's etc-hosts over /etc/hosts and a fresh
 * termination-log over /dev/termination-log; and it asks ImageFsInfo for a directory whose
 * filesystem capacity cAdvisor can read (no capacity: kubelet's image GC fails with "invalid
 * capacity 0 on image filesystem").
 */
import { existsSync, promises as fs, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { criClient } from '../helpers/cri';
import { mountsUnder, startDaemon, type RunningDaemon } from '../helpers/daemon';
import { isRoot, hasCni, cniReason } from '../helpers/env';
import { makeTempDir, pushBusybox } from '../helpers/fixtures';
import { startRegistry, type RunningRegistry } from '../helpers/registry';

describe.skipIf(!isRoot || !hasCni)(`CRI as kubelet 1.20 uses it (${cniReason})`, () => {
  let registry: RunningRegistry;
  let daemon: RunningDaemon;
  let cri: ReturnType<typeof criClient>;
  let criDir: string;
  let podDir: string;
  let image: string;

  beforeAll(async () => {
    registry = await startRegistry();
    await pushBusybox(registry.host, 'test/busybox:latest');
    image = `${registry.host}/test/busybox:latest`;
    podDir = await makeTempDir('berth-cri-kubelet-');
    criDir = await fs.mkdtemp('/tmp/bk-');
    const socket = path.join(criDir, 'cri.sock');
    daemon = await startDaemon({ args: ['--cri-socket', socket], config: { cri: { cniConfDir: criDir } } });
    cri = criClient(socket, 'v1alpha2');
    await cri.image.PullImage({ image: { image } });
  }, 120_000);

  afterAll(async () => {
    cri?.close();
    if (daemon) {
      await daemon.removeAllContainers();
      await daemon.stop();
    }
    await registry?.stop();
    if (podDir) await fs.rm(podDir, { recursive: true, force: true });
    if (criDir) await fs.rm(criDir, { recursive: true, force: true });
  });

  it('starts a container whose binds are host files (etc-hosts, termination-log), as kubelet makes them', async () => {
    const pod = { metadata: { name: 'hello', uid: 'uid-hello', namespace: 'default', attempt: 0 }, hostname: 'hello', log_directory: path.join(podDir, 'logs'), linux: {} };
    const sandbox = (await cri.runtime.RunPodSandbox({ config: pod })).pod_sandbox_id;
    const hosts = path.join(podDir, 'etc-hosts');
    await fs.writeFile(hosts, '# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n10.232.0.9\thello\n');
    const termination = path.join(podDir, 'containers', 'hello', '1a2b3c4d');
    await fs.mkdir(path.dirname(termination), { recursive: true });
    await fs.writeFile(termination, '', { mode: 0o666 });
    const { container_id } = await cri.runtime.CreateContainer({
      pod_sandbox_id: sandbox,
      config: {
        metadata: { name: 'hello', attempt: 0 },
        image: { image },
        command: ['sh', '-c', 'cat /etc/hosts; echo bye > /dev/termination-log; sleep 3600'],
        log_path: 'hello/0.log',
        mounts: [
          { container_path: '/etc/hosts', host_path: hosts },
          { container_path: '/dev/termination-log', host_path: termination },
        ],
        linux: {},
      },
      sandbox_config: pod,
    });
    await cri.runtime.StartContainer({ container_id });
    expect((await cri.runtime.ContainerStatus({ container_id })).status.state).toBe('CONTAINER_RUNNING');
    const seen = await cri.runtime.ExecSync({ container_id, cmd: ['cat', '/etc/hosts'], timeout: 5 });
    expect(seen.stdout.toString()).toContain('10.232.0.9\thello');
    // The sources stay files, and the container writes through to the host's.
    expect(statSync(hosts).isFile()).toBe(true);
    const done = await cri.runtime.ExecSync({ container_id, cmd: ['cat', '/dev/termination-log'], timeout: 5 });
    expect(done.stdout.toString()).toBe('bye\n');
    expect(await fs.readFile(termination, 'utf8')).toBe('bye\n');

    await cri.runtime.StopPodSandbox({ pod_sandbox_id: sandbox });
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: sandbox });
    expect((await cri.runtime.ListContainers({})).containers).toEqual([]);
    expect(mountsUnder(daemon.root)).toEqual([]);
  }, 60_000);

  it('names an existing directory below its root in ImageFsInfo', async () => {
    const { image_filesystems } = await cri.image.ImageFsInfo({});
    const dir = image_filesystems[0].fs_id.mountpoint;
    expect(dir.startsWith(daemon.root)).toBe(true);
    expect(existsSync(dir) && statSync(dir).isDirectory()).toBe(true);
    expect(Number(image_filesystems[0].used_bytes.value)).toBeGreaterThan(0);
  });
});
