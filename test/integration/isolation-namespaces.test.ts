import { hostname } from 'node:os';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRoot, rootReason } from '../helpers/env';
import { ContainerHarness } from '../helpers/rootfs';

describe.skipIf(!isRoot)(`isolation probes through runtime.native + isolator.namespaces (${rootReason})`, () => {
  let h: ContainerHarness;
  beforeAll(async () => {
    h = await new ContainerHarness().init();
  });
  afterAll(() => {
    expect(h.leftoverMounts()).toEqual([]);
    h.dispose();
  });

  const sh = (script: string, opts: Parameters<ContainerHarness['run']>[1] = {}) => h.run(['sh', '-c', script], opts);

  it('runs the container process as pid 1 and hides host processes', async () => {
    // The glob is a shell builtin: the only process to see is the shell itself.
    const r = await sh('echo pid=$$; cd /proc && echo [0-9]*; ps -o pid,comm; true');
    expect(r.exit.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^pid=1\n1\n/);
    expect(r.stdout).toMatch(/PID\s+COMMAND\n\s+1 sh\n\s+\d+ ps\n$/);
    expect(readFileSync(`/proc/${process.pid}/stat`, 'utf8')).toBeTruthy(); // while the host has this one
  });

  it('sets the hostname in its own uts namespace', async () => {
    const r = await sh('hostname; cat /etc/hostname');
    const [name, file] = r.stdout.trim().split('\n');
    expect(name).toBe(r.id.slice(0, 12));
    expect(file).toBe(name);
    expect(name).not.toBe(hostname());
    expect(hostname()).not.toBe(name); // the host's own name is untouched
  });

  it('has only lo, up, in its network namespace', async () => {
    const r = await sh('cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d " "; cat /sys/class/net/lo/operstate; cat /sys/class/net/lo/flags');
    const [ifaces, ...rest] = [r.stdout.trim().split('\n').slice(0, -2), ...r.stdout.trim().split('\n').slice(-2)];
    expect(ifaces).toEqual(['lo']);
    expect(Number(rest[1]) & 1).toBe(1); // IFF_UP
  });

  it('refuses mount without CAP_SYS_ADMIN', async () => {
    const r = await sh('mount -t tmpfs tmpfs /tmp; echo rc=$?');
    expect(r.stdout).toContain('rc=1');
    expect(r.stderr).toMatch(/permission denied|not permitted/i);
  });

  it('keeps /proc/sys and /sys read-only', async () => {
    const r = await sh('echo 1 > /proc/sys/kernel/domainname; echo a=$?; touch /sys/x; echo b=$?; grep -E " /proc/sys | /sys " /proc/self/mountinfo');
    expect(r.stdout).toMatch(/a=[1-9]/);
    expect(r.stdout).toMatch(/b=[1-9]/);
    expect(r.stderr).toMatch(/read-only file system/i);
    for (const line of r.stdout.split('\n').filter((l) => l.includes(' /proc/sys ') || l.includes(' /sys '))) {
      expect(line.split(' ')[5]).toMatch(/^ro\b/);
    }
  });

  it('masks /proc/kcore and friends', async () => {
    // (this VM's kernel may have no /proc/kcore at all; where it exists it must read nothing)
    const r = await sh('cat /proc/kcore 2>/dev/null | wc -c; cat /proc/keys | wc -c; ls /sys/firmware | wc -l; grep -c -E " /proc/keys | /sys/firmware " /proc/self/mountinfo');
    expect(r.stdout.trim().split('\n').map(Number)).toEqual([0, 0, 0, 2]);
    expect(readFileSync('/proc/keys', 'utf8').length).toBeGreaterThan(0); // while the host's is not empty
  });

  it("keeps Docker's 14 capabilities: CapBnd 00000000a80425fb", async () => {
    const r = await sh('grep -E "Cap(Bnd|Eff|Prm|Inh|Amb)" /proc/self/status');
    expect(r.stdout).toContain('CapBnd:\t00000000a80425fb');
    expect(r.stdout).toContain('CapEff:\t00000000a80425fb');
    expect(r.stdout).toContain('CapInh:\t0000000000000000');
  });

  it('applies CapAdd / CapDrop and lifts everything for Privileged', async () => {
    const r1 = await sh('grep CapBnd /proc/self/status', { hostConfig: { CapDrop: ['NET_RAW', 'MKNOD'], CapAdd: ['SYS_ADMIN'] } });
    // a80425fb - NET_RAW(13) - MKNOD(27) + SYS_ADMIN(21)
    expect(r1.stdout.trim()).toBe(`CapBnd:\t${((0xa80425fbn & ~(1n << 13n) & ~(1n << 27n)) | (1n << 21n)).toString(16).padStart(16, '0')}`);
    const r2 = await sh('wc -c < /proc/kcore > /dev/null; grep -c kcore /proc/self/mountinfo; grep CapBnd /proc/self/status', { hostConfig: { Privileged: true } });
    expect(r2.stdout.split('\n')[0]).toBe('0'); // /proc/kcore not masked
    const host = readFileSync('/proc/self/status', 'utf8').match(/CapBnd:\t(\w+)/)![1];
    expect(r2.stdout).toContain(`CapBnd:\t${host}`);
  });

  it('creates the device nodes and /dev links', async () => {
    const r = await sh(
      'for d in null zero full random urandom tty; do stat -c "%n %F %t:%T %a" /dev/$d; done; for l in ptmx fd stdin; do readlink /dev/$l; done; test -d /dev/pts && test -d /dev/shm && test -d /dev/mqueue && echo dirs-ok; head -c 4 /dev/zero | od -An -tx1; echo x > /dev/null && echo null-ok',
    );
    expect(r.exit.exitCode).toBe(0);
    for (const [d, maj, min] of [
      ['null', 1, 3],
      ['zero', 1, 5],
      ['full', 1, 7],
      ['random', 1, 8],
      ['urandom', 1, 9],
      ['tty', 5, 0],
    ]) {
      expect(r.stdout).toContain(`/dev/${d} character special file ${maj.toString(16)}:${min.toString(16)} 666`);
    }
    expect(r.stdout).toContain('pts/ptmx\n/proc/self/fd\n/proc/self/fd/0');
    expect(r.stdout).toContain('dirs-ok');
    expect(r.stdout).toContain('00 00 00 00');
    expect(r.stdout).toContain('null-ok');
  });

  it('runs as uid 1000 with no capabilities left', async () => {
    const r = await sh('id -u; id -g; grep CapEff /proc/self/status; touch /root/x; echo rc=$?', { process: { uid: 1000, gid: 1000, cwd: '/home/app' } });
    expect(r.stdout).toMatch(/^1000\n1000\nCapEff:\t0000000000000000\n/);
    expect(r.stdout).toContain('rc=1');
  });

  it('makes a read-only bind mount refuse writes, and a read-write one accept them', async () => {
    const hostDir = mkdtempSync('/tmp/berth-bind-');
    try {
      writeFileSync(`${hostDir}/seen`, 'from host\n');
      const r = await sh('cat /ro/seen; echo x > /ro/new; echo ro=$?; echo y > /rw/new; echo rw=$?', {
        hostConfig: { Binds: [`${hostDir}:/ro:ro`, `${hostDir}:/rw`] },
      });
      expect(r.stdout).toContain('from host');
      expect(r.stdout).toMatch(/ro=[1-9]/);
      expect(r.stderr).toMatch(/read-only file system/i);
      expect(r.stdout).toContain('rw=0');
      expect(readFileSync(`${hostDir}/new`, 'utf8')).toBe('y\n');
    } finally {
      rmSync(hostDir, { recursive: true, force: true });
    }
  });

  it('makes the rootfs read-only with ReadonlyRootfs', async () => {
    const r = await sh('touch /data/x; echo rc=$?; touch /dev/shm/ok && echo shm-ok', { hostConfig: { ReadonlyRootfs: true } });
    expect(r.stdout).toContain('rc=1');
    expect(r.stdout).toContain('shm-ok');
  });

  it('leaks no fds beyond 0-2 into the container', async () => {
    const r = await h.run(['ls', '/proc/self/fd']);
    // ls itself opens one fd to read the directory
    expect(
      r.stdout
        .trim()
        .split('\n')
        .map(Number)
        .filter((fd) => fd > 2).length,
    ).toBeLessThanOrEqual(1);
    // pid 1 is the exec'd shell; list its fds from a child (ls's own dir fd is not pid 1's)
    const r2 = await sh('ls /proc/1/fd; true');
    expect(r2.stdout.trim().split('\n').sort()).toEqual(['0', '1', '2']);
  });

  it('uses the host network with NetworkMode host', async () => {
    const r = await sh('cat /proc/net/dev | tail -n +3 | wc -l; hostname', { hostConfig: { NetworkMode: 'host' } });
    const hostIfaces = readFileSync('/proc/net/dev', 'utf8').trim().split('\n').length - 2;
    expect(Number(r.stdout.split('\n')[0])).toBe(hostIfaces);
    expect(r.stdout.split('\n')[1]).toBe(hostname());
  });

  it('refuses a rootfs whose /proc is a symlink', async () => {
    const h2 = await new ContainerHarness().init();
    try {
      rmSync(`${h2.rootfs}/proc`, { recursive: true });
      symlinkSync('/etc', `${h2.rootfs}/proc`);
      await expect(h2.run(['true'])).rejects.toThrow(/proc is a symlink/);
      expect(h2.leftoverMounts()).toEqual([]);
    } finally {
      h2.dispose();
    }
  });

  it('runs in a user namespace with the configured maps (root inside, uid 100000 outside), refusing shared binds', async () => {
    const map = [{ containerID: 0, hostID: 100000, size: 65536 }];
    const hu = await new ContainerHarness().init({ userNamespace: { uidMappings: map, gidMappings: map } });
    try {
      // Like Docker's remapped root: the rootfs belongs to the mapped root, its path is searchable.
      chmodSync(hu.base, 0o711);
      execFileSync('chown', ['-R', '100000:100000', hu.rootfs]);
      const r = await hu.run(['sh', '-c', 'id -u; cat /proc/self/uid_map; echo hi > /tmp/x && echo wrote; cat /etc/hostname; mount -t tmpfs t /mnt 2>/dev/null; echo mount=$?']);
      expect(r.exit.exitCode).toBe(0);
      expect(r.stdout).toMatch(/^0\n\s+0\s+100000\s+65536\nwrote\n[0-9a-f]{12}\nmount=[1-9]/);
      expect(statSync(`${hu.rootfs}/tmp/x`).uid).toBe(100000); // host view of what "root" wrote
      // A shared bind would let the namespace's root mount on the host: refused, naming the mount.
      await expect(hu.run(['true'], { hostConfig: { Binds: [`${hu.base}:/s:rshared`] } })).rejects.toThrow(/mount \/s: shared propagation is not supported with a user namespace/);
      expect(hu.leftoverMounts()).toEqual([]);
    } finally {
      hu.dispose();
    }
  });

  it('rejects bad host config naming the key', async () => {
    await expect(h.run(['true'], { hostConfig: { NetworkMode: 'container:abc' } })).rejects.toThrow(/HostConfig.NetworkMode/);
    await expect(h.run(['true'], { hostConfig: { Binds: ['relative:/x'] } })).rejects.toThrow(/bind mount "relative:\/x"/);
    await expect(h.run(['true'], { hostConfig: { CapAdd: ['NOPE'] } })).rejects.toThrow(/HostConfig.CapAdd: unknown capability "NOPE"/);
  });
});
