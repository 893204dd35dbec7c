/**
 * CRI mount propagation (root): on a host dir that is a shared mount, a mount made on the host
 * after the containers started shows in a PROPAGATION_HOST_TO_CONTAINER (rslave) mount and not in
 * a PROPAGATION_PRIVATE one; a mount a (privileged, as critest's) PROPAGATION_BIDIRECTIONAL
 * container makes below its mount point shows on the host, and from there in the rslave one;
 * ContainerStatus reports each mode. What propagated to the host outlives the container (as with
 * containerd): the test unmounts it.
 */
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { criClient } from '../helpers/cri';
import { mountsUnder, startDaemon, type RunningDaemon } from '../helpers/daemon';
import { isRoot, hasCni, cniReason } from '../helpers/env';
import { makeTempDir, pushBusybox } from '../helpers/fixtures';
import { startRegistry, type RunningRegistry } from '../helpers/registry';

describe.skipIf(!isRoot || !hasCni)(`CRI mount propagation (${cniReason})`, () => {
  let registry: RunningRegistry;
  let daemon: RunningDaemon;
  let cri: ReturnType<typeof criClient>;
  let criDir: string;
  let shared: string;
  let image: string;

  beforeAll(async () => {
    registry = await startRegistry();
    await pushBusybox(registry.host, 'test/busybox:latest');
    image = `${registry.host}/test/busybox:latest`;
    // The host side: a mount of its own, shared, so that events can propagate from and to it.
    shared = await makeTempDir('berth-cri-prop-');
    execFileSync('mount', ['--bind', shared, shared]);
    execFileSync('mount', ['--make-shared', shared]);
    criDir = await fs.mkdtemp('/tmp/bp-');
    const socket = path.join(criDir, 'cri.sock');
    daemon = await startDaemon({ args: ['--cri-socket', socket], config: { cri: { cniConfDir: criDir } } });
    cri = criClient(socket);
    await cri.image.PullImage({ image: { image } });
  }, 120_000);

  afterAll(async () => {
    cri?.close();
    if (daemon) {
      await daemon.removeAllContainers();
      await daemon.stop();
    }
    await registry?.stop();
    if (shared) {
      execFileSync('umount', ['--recursive', shared]);
      await fs.rm(shared, { recursive: true, force: true });
    }
    if (criDir) await fs.rm(criDir, { recursive: true, force: true });
  });

  it('carries host mounts into HOST_TO_CONTAINER mounts, not into PRIVATE ones; BIDIRECTIONAL both ways', async () => {
    const podConfig = { metadata: { name: 'prop', uid: 'uid-prop', namespace: 'default', attempt: 0 }, linux: {} };
    const pod = (await cri.runtime.RunPodSandbox({ config: podConfig })).pod_sandbox_id;
    const start = async (name: string, propagation: string, privileged = false) => {
      const { container_id } = await cri.runtime.CreateContainer({
        pod_sandbox_id: pod,
        config: {
          metadata: { name, attempt: 0 },
          image: { image },
          command: ['/bin/busybox'],
          args: ['sleep', '3600'],
          mounts: [{ host_path: shared, container_path: '/shared', propagation }],
          linux: { security_context: { privileged } },
        },
        sandbox_config: podConfig,
      });
      await cri.runtime.StartContainer({ container_id });
      const { status } = await cri.runtime.ContainerStatus({ container_id });
      expect(status.mounts).toEqual([expect.objectContaining({ host_path: shared, container_path: '/shared', propagation })]);
      return container_id;
    };
    const privateId = await start('private', 'PROPAGATION_PRIVATE');
    const slaveId = await start('slave', 'PROPAGATION_HOST_TO_CONTAINER');
    const run = (id: string, script: string) => cri.runtime.ExecSync({ container_id: id, cmd: ['sh', '-c', script], timeout: 30 });

    await fs.mkdir(path.join(shared, 'from-host'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', path.join(shared, 'from-host')]);
    await fs.writeFile(path.join(shared, 'from-host', 'marker'), 'host side\n');
    expect((await run(slaveId, 'cat /shared/from-host/marker')).stdout.toString()).toBe('host side\n');
    const hidden = await run(privateId, 'cat /shared/from-host/marker');
    expect(hidden.exit_code).not.toBe(0);
    expect(hidden.stderr.toString()).toMatch(/No such file/);
    // The directory is there (one filesystem); the mount on it is not.
    expect((await run(privateId, 'ls /shared')).stdout.toString()).toBe('from-host\n');

    // Both ways: what the BIDIRECTIONAL container mounts reaches the host, and the host's mounts it.
    const bidiId = await start('bidi', 'PROPAGATION_BIDIRECTIONAL', true);
    expect((await run(bidiId, 'cat /shared/from-host/marker')).stdout.toString()).toBe('host side\n');
    await fs.mkdir(path.join(shared, 'from-ctr'));
    const mounted = await run(bidiId, 'mount -t tmpfs -o size=1m tmpfs /shared/from-ctr && echo container side > /shared/from-ctr/marker');
    expect([mounted.exit_code, mounted.stderr.toString()]).toEqual([0, '']);
    expect(mountsUnder(shared)).toContain(path.join(shared, 'from-ctr'));
    expect(await fs.readFile(path.join(shared, 'from-ctr', 'marker'), 'utf8')).toBe('container side\n');
    expect((await run(slaveId, 'cat /shared/from-ctr/marker')).stdout.toString()).toBe('container side\n');
    expect((await run(privateId, 'cat /shared/from-ctr/marker')).exit_code).not.toBe(0);

    // On a host path that is not a shared mount nothing could propagate: refused, as containerd does.
    const plain = path.join(criDir, 'plain');
    await fs.mkdir(plain);
    execFileSync('mount', ['--bind', '--make-private', plain, plain]);
    try {
      const { container_id } = await cri.runtime.CreateContainer({
        pod_sandbox_id: pod,
        config: {
          metadata: { name: 'bidi-plain', attempt: 0 },
          image: { image },
          command: ['/bin/busybox'],
          args: ['true'],
          mounts: [{ host_path: plain, container_path: '/plain', propagation: 'PROPAGATION_BIDIRECTIONAL' }],
        },
        sandbox_config: podConfig,
      });
      await expect(cri.runtime.StartContainer({ container_id })).rejects.toMatchObject({
        details: expect.stringContaining(`mount /plain: shared propagation: path ${plain} is mounted on ${plain} but it is not a shared mount`),
      });
    } finally {
      execFileSync('umount', [plain]);
    }

    await cri.runtime.StopPodSandbox({ pod_sandbox_id: pod });
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: pod });
    // The container is gone; its tmpfs stays on the host until unmounted there.
    expect(mountsUnder(shared)).toContain(path.join(shared, 'from-ctr'));
    for (const d of ['from-ctr', 'from-host']) execFileSync('umount', [path.join(shared, d)]);
    expect(mountsUnder(shared)).toEqual([shared]);
  }, 120_000);
});
