/**
 * Bind mount propagation through the Docker API (root), as with dockerd: on a host dir that is a
 * shared mount, `-v src:dst:rshared` (and `--mount ...,bind-propagation=rshared`) carries mounts
 * both ways (a tmpfs the container mounts below dst shows on the host at src, a host mount shows in
 * the container); the default rprivate bind carries neither; a source that is not on a shared
 * mount is refused as dockerd refuses it. The test unmounts what propagated to the host.
 */
import { execFileSync } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, mountsUnder, removeAllAndStop, startDaemon, unmountUnder, type RunningDaemon } from '../helpers/daemon';
import { isRoot, rootReason } from '../helpers/env';
import { makeTempDir, pushBusybox } from '../helpers/fixtures';
import { startRegistry, type RunningRegistry } from '../helpers/registry';

describe.skipIf(!isRoot)(`bind propagation through the Docker API (${isRoot ? 'root' : rootReason})`, () => {
  let registry: RunningRegistry;
  let daemon: RunningDaemon;
  let img: string;
  let shared: string;
  let plain: string;

  beforeAll(async () => {
    registry = await startRegistry();
    await pushBusybox(registry.host, 'test/busybox:latest');
    img = `${registry.host}/test/busybox:latest`;
    // The host side: a mount of its own, shared, so that events can propagate from and to it.
    shared = await makeTempDir('berth-bind-prop-');
    execFileSync('mount', ['--bind', shared, shared]);
    execFileSync('mount', ['--make-shared', shared]);
    // And one that is not shared, whatever the host's / is.
    plain = await makeTempDir('berth-bind-plain-');
    execFileSync('mount', ['--bind', '--make-private', plain, plain]);
    daemon = await startDaemon();
    expectOk(await daemon.cli(['pull', '-q', img]));
  }, 120_000);

  afterAll(async () => {
    if (daemon) expect(await removeAllAndStop(daemon)).toEqual([]);
    await registry?.stop();
    if (shared) {
      unmountUnder(shared);
      expect(mountsUnder(shared)).toEqual([]);
      await fs.rm(shared, { recursive: true, force: true });
    }
    if (plain) {
      unmountUnder(plain);
      await fs.rm(plain, { recursive: true, force: true });
    }
  });

  const cli = (args: string[]) => daemon.cli(args);
  const mountedOnHost = (p: string) => mountsUnder(shared).includes(p);

  it('-v src:dst:rshared carries container mounts to the host and host mounts in; rprivate carries neither', async () => {
    for (const d of ['from-ctr', 'from-priv', 'from-host', 'from-mount']) await fs.mkdir(path.join(shared, d));
    const bidi = expectOk(await cli(['run', '-d', '--cap-add', 'SYS_ADMIN', '-v', `${shared}:/s:rshared`, img, 'sleep', '3600'])).stdout.trim();
    const priv = expectOk(await cli(['run', '-d', '--cap-add', 'SYS_ADMIN', '-v', `${shared}:/p`, img, 'sleep', '3600'])).stdout.trim();
    const viaMount = expectOk(await cli(['run', '-d', '--privileged', '--mount', `type=bind,source=${shared},target=/m,bind-propagation=rshared`, img, 'sleep', '3600'])).stdout.trim();
    const inspect = JSON.parse(expectOk(await cli(['inspect', bidi, priv, viaMount])).stdout);
    expect(inspect.map((c: any) => c.Mounts.map((m: any) => [m.Destination, m.Propagation]))).toEqual([[['/s', 'rshared']], [['/p', 'rprivate']], [['/m', 'rshared']]]);

    // Container -> host.
    expectOk(await cli(['exec', bidi, 'sh', '-c', 'mount -t tmpfs -o size=1m tmpfs /s/from-ctr && echo container side > /s/from-ctr/marker']));
    expect(mountedOnHost(path.join(shared, 'from-ctr'))).toBe(true);
    expect(readFileSync(path.join(shared, 'from-ctr', 'marker'), 'utf8')).toBe('container side\n');
    expectOk(await cli(['exec', viaMount, 'mount', '-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', '/m/from-mount']));
    expect(mountedOnHost(path.join(shared, 'from-mount'))).toBe(true);
    // ... and not from the rprivate one: its tmpfs stays in the container.
    expectOk(await cli(['exec', priv, 'sh', '-c', 'mount -t tmpfs -o size=1m tmpfs /p/from-priv && touch /p/from-priv/inside']));
    expect(mountedOnHost(path.join(shared, 'from-priv'))).toBe(false);
    expect(await fs.readdir(path.join(shared, 'from-priv'))).toEqual([]);

    // Host -> container.
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', path.join(shared, 'from-host')]);
    await fs.writeFile(path.join(shared, 'from-host', 'marker'), 'host side\n');
    expect(expectOk(await cli(['exec', bidi, 'cat', '/s/from-host/marker'])).stdout).toBe('host side\n');
    expect((await cli(['exec', priv, 'cat', '/p/from-host/marker'])).code).not.toBe(0);
    // What one rshared container mounted, the other rshared one sees too (through the host).
    expect(expectOk(await cli(['exec', viaMount, 'cat', '/m/from-ctr/marker'])).stdout).toBe('container side\n');

    expectOk(await cli(['rm', '-f', bidi, priv, viaMount]));
    // The container's mounts outlive it on the host (as with dockerd): ours to clean up.
    expect(mountedOnHost(path.join(shared, 'from-ctr'))).toBe(true);
    for (const d of ['from-ctr', 'from-mount', 'from-host']) execFileSync('umount', [path.join(shared, d)]);
    expect(mountsUnder(shared)).toEqual([shared]);
  }, 120_000);

  it('refuses rshared on a source that is not on a shared mount, naming it', async () => {
    const res = await cli(['run', '--rm', '-v', `${plain}:/s:rshared`, img, 'true']);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(new RegExp(`mount /s: .*${plain} is mounted on ${plain} but it is not a shared mount`));
  }, 60_000);
});
