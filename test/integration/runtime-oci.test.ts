/**
 * runtime.oci end to end: berthd with `runtime: 'oci'` drives Debian's runc on busybox images
 * (umoci-built, pushed by skopeo to a real registry). Checks the attach window (the cgroup
 * isolator puts the process in its cgroup before exec), output in the json-file log and through
 * attach, exit codes, kill, OOM, and that nothing is left behind (runc state, cgroups, sockets).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, promises as fs, readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSpec, cgroupsPathFor } from '../../plugins/runtime-oci/spec';
import { expectOk, mountsUnder, startDaemon, unmountUnder, type RunningDaemon } from '../helpers/daemon';
import { hasCommand, isRoot, rootReason, until } from '../helpers/env';
import { makeTempDir, pushBusybox } from '../helpers/fixtures';
import { startRegistry, type RunningRegistry } from '../helpers/registry';

describe('runtime.oci spec translation', () => {
  const plan = {
    namespaces: ['pid', 'mount', 'net', 'uts'],
    rootfs: '/r',
    mounts: [{ destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid'] }],
    maskedPaths: ['/proc/kcore'],
    readonlyPaths: ['/proc/sys'],
    capabilities: ['CAP_KILL'],
    noNewPrivileges: true,
    readonlyRootfs: true,
    hostname: 'h',
    rlimits: [{ type: 'nofile', soft: 1024, hard: -1 }],
    devices: [{ path: '/dev/null', type: 'c' as const, major: 1, minor: 3, fileMode: 0o20666, uid: 0, gid: 0 }],
    process: { args: ['sh'], env: ['A=1'], cwd: '/', uid: 1, gid: 2, additionalGids: [3], terminal: false },
  };

  it('maps every plan field onto the OCI runtime spec', () => {
    const spec = buildSpec(plan, { cgroupsPath: 'berth/x' });
    expect(spec.linux.namespaces.map((n) => n.type)).toEqual(['pid', 'mount', 'network', 'uts']);
    expect(spec.process.user).toEqual({ uid: 1, gid: 2, additionalGids: [3] });
    expect(spec.process.capabilities.bounding).toEqual(['CAP_KILL']);
    expect(spec.process.capabilities.ambient).toEqual([]);
    expect(spec.process.rlimits).toEqual([{ type: 'RLIMIT_NOFILE', soft: 1024, hard: 18446744073709551615 }]);
    expect(spec.root).toEqual({ path: '/r', readonly: true });
    expect(spec.linux.devices?.[0].fileMode).toBe(0o666);
    expect(spec.linux.cgroupsPath).toBe('berth/x');
    expect(spec.linux.maskedPaths).toEqual(['/proc/kcore']);
    expect(() => buildSpec({ ...plan, namespaces: ['bogus'] })).toThrow(/unknown namespace "bogus"/);
    expect(spec.linux.rootfsPropagation).toBeUndefined();
  });

  it("sets the root's propagation as dockerd does when a bind asks shared or slave", () => {
    const bind = (mode: string) => ({ destination: `/${mode}`, type: 'bind', source: '/h', options: ['rbind', 'rw', mode] });
    expect(buildSpec({ ...plan, mounts: [bind('rprivate'), bind('rshared'), bind('rslave')] }).linux.rootfsPropagation).toBe('shared');
    expect(buildSpec({ ...plan, mounts: [bind('rprivate'), bind('rslave')] }).linux.rootfsPropagation).toBe('rslave');
    expect(buildSpec({ ...plan, mounts: [bind('rprivate')] }).linux.rootfsPropagation).toBeUndefined();
  });

  it("expresses cgroup dirs below berthd's own cgroups as one relative cgroupsPath", () => {
    const mountinfo = [
      '30 25 0:26 / /sys/fs/cgroup/memory rw,nosuid shared:9 - cgroup cgroup rw,memory',
      '31 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:10 - cgroup cgroup rw,cpu,cpuacct',
      '32 25 0:28 / /sys/fs/cgroup/unified rw,nosuid shared:11 - cgroup2 cgroup2 rw',
    ].join('\n');
    const cgroup = '4:memory:/job/1\n2:cpu,cpuacct:/\n0::/\n';
    const dirs = ['/sys/fs/cgroup/memory/job/1/berth/c1', '/sys/fs/cgroup/cpu,cpuacct/berth/c1', '/sys/fs/cgroup/unified/berth/c1'];
    expect(cgroupsPathFor(dirs, { mountinfo, cgroup })).toBe('berth/c1');
    // Same absolute path everywhere but not below our own cgroup in memory: absolute.
    expect(cgroupsPathFor(['/sys/fs/cgroup/memory/x/c1', '/sys/fs/cgroup/unified/x/c1'], { mountinfo, cgroup })).toBe('/x/c1');
  });
});

describe.skipIf(!isRoot || !hasCommand('runc'))(`runtime.oci with runc (${!isRoot ? rootReason : hasCommand('runc') ? 'runc found' : 'needs runc: apt-get install runc'})`, () => {
  let registry: RunningRegistry;
  let daemon: RunningDaemon;
  let img: string;

  beforeAll(async () => {
    registry = await startRegistry();
    img = `${registry.host}/test/oci-busybox:latest`;
    await pushBusybox(registry.host, 'test/oci-busybox:latest', {});
    daemon = await startDaemon({ config: { runtime: 'oci', pluginConfig: { 'runtime.oci': { binary: 'runc' } } } });
    expectOk(await daemon.cli(['pull', '-q', img]));
  });

  afterAll(async () => {
    if (daemon) {
      await daemon.removeAllContainers();
      const runcRoot = path.join(daemon.root, 'plugins', 'runtime.oci', 'runc');
      // runc keeps no container state and berth no attach socket once everything is removed.
      expect(existsSync(runcRoot) ? readdirSync(runcRoot) : []).toEqual([]);
      expect(readdirSync(path.join(daemon.root, 'plugins', 'runtime.oci', 'attach'))).toEqual([]);
      await daemon.stop();
    }
    await registry?.stop();
  });

  it('berth plugins shows runtime.oci ok and runtime.native not selected', async () => {
    const out = expectOk(await daemon.cli(['plugins'])).stdout;
    expect(out).toMatch(/runtime\.oci\s+ok/);
    expect(out).toMatch(/runtime\.native\s+disabled/);
  });

  it('runs a container: output through attach and the json-file log, exit code kept', async () => {
    const run = await daemon.cli(['run', '--name', 'oci-echo', img, 'sh', '-c', 'echo hello-oci; echo to-err >&2; exit 7']);
    expect(run.code).toBe(7);
    expect(run.stdout).toContain('hello-oci');
    expect(run.stderr).toContain('to-err');
    const logs = expectOk(await daemon.cli(['logs', 'oci-echo']));
    expect(logs.stdout).toBe('hello-oci\n');
    expect(logs.stderr).toBe('to-err\n');
    const inspect = JSON.parse(expectOk(await daemon.cli(['inspect', 'oci-echo'])).stdout)[0];
    expect(inspect.State.ExitCode).toBe(7);
    const line = JSON.parse((await fs.readFile(inspect.LogPath, 'utf8')).split('\n')[0]);
    expect(line).toMatchObject({ log: 'hello-oci\n', stream: 'stdout' });
    expectOk(await daemon.cli(['rm', 'oci-echo']));
  });

  it('isolates like the native runtime: pid 1, own hostname, Docker default capabilities, lo up', async () => {
    const out = expectOk(await daemon.cli(['run', '--rm', '--hostname', 'ocibox', img, 'sh', '-c', 'echo pid=$$; hostname; cat /proc/self/cgroup; grep CapBnd /proc/self/status; ls /sys/class/net']));
    expect(out.stdout).toContain('pid=1');
    expect(out.stdout).toContain('ocibox');
    expect(out.stdout).toContain('CapBnd:\t00000000a80425fb');
    expect(out.stdout.trim().split('\n')).toContain('lo');
  });

  it('an unknown command is a clear start error', async () => {
    const res = await daemon.cli(['run', '--rm', img, 'no-such-binary']);
    expect(res.code).toBe(127); // docker run's code for a command that is not there
    expect(res.stderr).toMatch(/no-such-binary/);
    const dir = await daemon.cli(['run', '--rm', img, '/etc']);
    expect(dir.code).toBe(126); // there, but not something to run
  });

  it('kill and stop reach the process; exit 137 after SIGKILL', async () => {
    const id = expectOk(await daemon.cli(['run', '-d', img, 'sleep', '300'])).stdout.trim();
    const state = JSON.parse(expectOk(await daemon.cli(['inspect', id])).stdout)[0].State;
    expect(state.Running).toBe(true);
    expectOk(await daemon.cli(['kill', id]));
    const waited = expectOk(await daemon.cli(['wait', id]));
    expect(waited.stdout.trim()).toBe('137');
    expectOk(await daemon.cli(['rm', id]));
  });

  it('an exceeded memory limit shows as OOMKilled', async () => {
    const id = expectOk(await daemon.cli(['run', '-d', '--memory', '16m', '--memory-swap', '16m', img, 'sh', '-c', 'x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done'])).stdout.trim();
    const code = Number(expectOk(await daemon.cli(['wait', id])).stdout.trim());
    const state = JSON.parse(expectOk(await daemon.cli(['inspect', id])).stdout)[0].State;
    expect(code).toBe(137);
    expect(state.OOMKilled).toBe(true);
    expectOk(await daemon.cli(['rm', id]));
  });

  it('-v src:dst:rshared carries a container mount to the host through runc', async () => {
    const shared = await makeTempDir('berth-oci-prop-');
    try {
      execFileSync('mount', ['--bind', '--make-shared', shared, shared]);
      await fs.mkdir(path.join(shared, 'from-ctr'));
      // runtime.oci has no exec sessions: the container's own process mounts, then waits.
      const script = 'mount -t tmpfs -o size=1m tmpfs /s/from-ctr && echo container side > /s/from-ctr/marker; sleep 300';
      const id = expectOk(await daemon.cli(['run', '-d', '--cap-add', 'SYS_ADMIN', '-v', `${shared}:/s:rshared`, img, 'sh', '-c', script])).stdout.trim();
      await until('the container tmpfs on the host', () => existsSync(path.join(shared, 'from-ctr', 'marker')));
      expect(mountsUnder(shared)).toContain(path.join(shared, 'from-ctr'));
      expect(await fs.readFile(path.join(shared, 'from-ctr', 'marker'), 'utf8')).toBe('container side\n');
      expectOk(await daemon.cli(['rm', '-f', id]));
    } finally {
      unmountUnder(shared);
      expect(mountsUnder(shared)).toEqual([]);
      await fs.rm(shared, { recursive: true, force: true });
    }
  });
});
