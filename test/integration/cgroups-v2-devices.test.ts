/**
 * The cgroup v2 device filter end to end: a real berthd told to use only the unified hierarchy
 * (pluginConfig['isolator.cgroups'].hierarchy = 'v2', as on a v2-only host, where there is no
 * devices controller), containers that mknod host devices and try to open them, --device,
 * --privileged, and `update` with new device rules. The BPF program is what refuses: berthd's
 * own v1 devices cgroup (the host's root here) allows everything. Last, the same rules through a
 * default (hybrid) berthd, where the v1 devices controller enforces them.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bpf } from '../../core/sys/bpf';
import { parseCgroupMounts, parseSelfCgroup } from '../../plugins/isolator-cgroups/layout';
import { findCgroupDirs } from '../helpers/cgroups-harness';
import { expectOk, startDaemon, type RunningDaemon } from '../helpers/daemon';
import { isRoot, rootReason, until } from '../helpers/env';
import { pushBusybox } from '../helpers/fixtures';
import { startRegistry, type RunningRegistry } from '../helpers/registry';

const mounts = parseCgroupMounts(readFileSync('/proc/self/mountinfo', 'utf8'));
const v2Mount = mounts.find((m) => m.type === 'cgroup2');
const hasV1Devices = mounts.some((m) => m.type === 'cgroup' && m.superOptions.includes('devices'));
const skipReason = !isRoot ? rootReason : !v2Mount ? 'no cgroup2 hierarchy is mounted' : '';

/** Host devices a default container must not open: [name, type, major, minor]. */
const FORBIDDEN: [string, 'c' | 'b', number, number][] = [
  ['kvm', 'c', 10, 232],
  ['tty1', 'c', 4, 1],
  ['loop0', 'b', 7, 0],
  ['tun', 'c', 10, 200],
  ['hwrng', 'c', 10, 183],
];

/**
 * A shell script that makes each device node in /tmp and opens it, one line per device:
 * `NAME: open` or `NAME: <the error>`. Only EPERM is the filter; a missing driver says ENXIO/ENODEV.
 */
function probeScript(devices: typeof FORBIDDEN): string {
  return devices
    .map(
      ([name, type, major, minor]) => `busybox mknod /tmp/${name} ${type} ${major} ${minor}; if (exec 3< /tmp/${name}) 2>/tmp/err; then echo "${name}: open"; else echo "${name}: $(cat /tmp/err)"; fi`,
    )
    .join('\n');
}

const deniedLine = (name: string) => new RegExp(`^${name}: .*Operation not permitted$`, 'm');

describe.skipIf(!!skipReason)(`device filter on cgroup v2 (BPF)${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  let registry: RunningRegistry;
  let daemon: RunningDaemon;
  let img: string;
  const ids = new Set<string>();

  beforeAll(async () => {
    registry = await startRegistry();
    img = `${registry.host}/test/busybox:devices`;
    await pushBusybox(registry.host, 'test/busybox:devices');
    daemon = await startDaemon({ config: { pluginConfig: { 'isolator.cgroups': { hierarchy: 'v2' } } } });
    expectOk(await daemon.cli(['pull', '-q', img]));
  });

  afterAll(async () => {
    if (daemon) {
      await daemon.removeAllContainers();
      await daemon.stop();
    }
    await registry?.stop();
    // Nothing of any container remains in any hierarchy (a BPF program lives only as long as its cgroup).
    for (const id of ids) expect(findCgroupDirs(id)).toEqual([]);
  });

  /** Create and start through the API (HostConfig as docker sends it), wait, return the output. */
  async function runWith(hostConfig: Record<string, unknown>, script: string, on = daemon): Promise<string> {
    const created = await on.api('/containers/create', { method: 'POST', body: { Image: img, Cmd: ['sh', '-c', script], HostConfig: hostConfig } });
    expect(created.status, created.body).toBe(201);
    const id = created.json.Id as string;
    ids.add(id);
    const started = await on.api(`/containers/${id}/start`, { method: 'POST' });
    expect(started.status, started.body).toBe(204);
    await on.api(`/containers/${id}/wait`, { method: 'POST' });
    const out = expectOk(await on.cli(['logs', id])).stdout;
    expectOk(await on.cli(['rm', id]));
    return out;
  }

  /** berthd's own cgroup2 directory (its /proc/PID/cgroup `0::` line). */
  function daemonV2Dir(): string {
    const own = parseSelfCgroup(readFileSync(`/proc/${daemon.pid}/cgroup`, 'utf8')).find((e) => e.id === '0')!;
    return join(v2Mount!.mountPoint, own.path);
  }

  it("reports cgroup v2 and puts the container below berthd's own v2 cgroup with one device program", async () => {
    const info = (await daemon.api('/info')).json;
    expect(info.CgroupVersion).toBe('2');
    const id = expectOk(await daemon.cli(['run', '-d', img, 'sleep', '30'])).stdout.trim();
    ids.add(id);
    try {
      const dir = join(daemonV2Dir(), 'berth', id);
      expect(findCgroupDirs(id)).toEqual([dir]);
      expect(bpf.devicePrograms(dir)).toHaveLength(1);
    } finally {
      expectOk(await daemon.cli(['rm', '-f', id]));
    }
    expect(findCgroupDirs(id)).toEqual([]);
  });

  it('refuses host devices to a default container; null, zero, urandom, tty and pts work', async () => {
    const out = await runWith(
      {},
      [
        probeScript(FORBIDDEN),
        'echo data > /dev/null && echo "null: ok"',
        'test "$(head -c 3 /dev/zero | wc -c)" = 3 && echo "zero: ok"',
        'test "$(head -c 3 /dev/urandom | wc -c)" = 3 && echo "urandom: ok"',
        // No controlling terminal here: the driver answers ENXIO, which means the filter let it through.
        'if (exec 3<> /dev/tty) 2>/tmp/err; then echo "tty: ok"; else echo "tty: $(cat /tmp/err)"; fi',
        '(exec 3<> /dev/ptmx && ls /dev/pts | grep -qx 0) && echo "pts: ok"',
      ].join('\n'),
    );
    for (const [name] of FORBIDDEN) expect(out).toMatch(deniedLine(name));
    for (const name of ['null', 'zero', 'urandom', 'pts']) expect(out).toContain(`${name}: ok`);
    expect(out).toMatch(/^tty: (ok|.*No such device or address)$/m);
  });

  it.skipIf(!existsSync('/dev/loop0'))('opens a device given with --device, and still nothing else', async () => {
    const out = await runWith({ Devices: [{ PathOnHost: '/dev/loop0', PathInContainer: '/dev/loop0', CgroupPermissions: 'rwm' }] }, probeScript(FORBIDDEN));
    expect(out).toContain('loop0: open');
    for (const [name] of FORBIDDEN.filter(([n]) => n !== 'loop0')) expect(out).toMatch(deniedLine(name));
  });

  it('refuses a --device that is not a device node, naming it, and creates nothing', async () => {
    const before = (await daemon.api('/containers/json?all=1')).json.length;
    const created = await daemon.api('/containers/create', {
      method: 'POST',
      body: { Image: img, Cmd: ['true'], HostConfig: { Devices: [{ PathOnHost: '/etc/hostname', PathInContainer: '/dev/x', CgroupPermissions: 'rwm' }] } },
    });
    expect(created.status).toBe(400);
    expect(created.json.message).toMatch(/custom device "\/etc\/hostname": not a device node/);
    expect((await daemon.api('/containers/json?all=1')).json.length).toBe(before);
  });

  it('lets a --privileged container open every device', async () => {
    const out = await runWith({ Privileged: true }, probeScript(FORBIDDEN));
    for (const [name] of FORBIDDEN) expect(out).not.toMatch(deniedLine(name));
    expect(out).toMatch(/^kvm: open$/m);
  });

  it('replaces the program on update with new device rules, for the running container', async () => {
    const id = expectOk(await daemon.cli(['run', '-d', img, 'sleep', '30'])).stdout.trim();
    ids.add(id);
    try {
      const dir = join(daemonV2Dir(), 'berth', id);
      const [before] = bpf.devicePrograms(dir);
      const tun = FORBIDDEN.filter(([n]) => n === 'tun');
      expect((await daemon.cli(['exec', id, 'sh', '-c', probeScript(tun)])).stdout).toMatch(deniedLine('tun'));
      const res = await daemon.api(`/containers/${id}/update`, { method: 'POST', body: { DeviceCgroupRules: ['c 10:200 rwm'] } });
      expect(res.status, res.body).toBe(200);
      const after = bpf.devicePrograms(dir);
      expect(after).toHaveLength(1);
      expect(after[0]).not.toBe(before);
      const out = (await daemon.cli(['exec', id, 'sh', '-c', `rm -f /tmp/tun; ${probeScript(FORBIDDEN)}`])).stdout;
      expect(out).toMatch(/^tun: open$/m);
      expect(out).toMatch(deniedLine('kvm'));
      const bad = await daemon.api(`/containers/${id}/update`, { method: 'POST', body: { DeviceCgroupRules: ['c 10:200 rwx'] } });
      expect(bad.status).toBe(400);
      expect(bad.json.message).toMatch(/DeviceCgroupRules\[0\]: invalid device cgroup rule format/);
      expect(bpf.devicePrograms(dir)).toEqual(after);
    } finally {
      expectOk(await daemon.cli(['rm', '-f', id]));
    }
    await until('the container cgroup to go', () => findCgroupDirs(id).length === 0);
  });

  it.skipIf(!hasV1Devices || !existsSync('/dev/loop0'))('gives the v1 devices controller the same list, --device and --device-cgroup-rule included', async () => {
    const hybrid = await startDaemon();
    try {
      expectOk(await hybrid.cli(['pull', '-q', img]));
      const out = await runWith({ Devices: [{ PathOnHost: '/dev/loop0', PathInContainer: '/dev/loop0' }], DeviceCgroupRules: ['c 10:200 rwm'] }, probeScript(FORBIDDEN), hybrid);
      expect(out).toMatch(/^loop0: open$/m);
      expect(out).toMatch(/^tun: open$/m);
      for (const name of ['kvm', 'tty1', 'hwrng']) expect(out).toMatch(deniedLine(name));
    } finally {
      await hybrid.removeAllContainers();
      await hybrid.stop();
    }
  });
});
