/**
 * Seccomp in the launcher and the runtimes: isolator.seccomp (plugins/isolator-seccomp) compiles
 * Docker's default profile to classic BPF, the plan carries it as `seccomp HEX`, and the launcher
 * installs it where runc does (last before exec with no_new_privs, before the capability drop
 * without). Checked three ways:
 * - no root: the isolator's plan, the plan line, the launcher's refusals, the OCI form for runc;
 * - root, no daemon (ContainerHarness: runtime.native + isolator.namespaces + isolator.seccomp):
 *   the kernel reports `Seccomp: 2`, ordinary programs run, the denied calls fail even where the
 *   capabilities would allow them, in both install orders;
 * - root, a real berthd with runtime.oci (runc), which builds its own BPF from the OCI form.
 * The profile compiler itself: test/unit/seccomp-profile.test.ts; the default in a real berthd:
 * seccomp-default.test.ts.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IsolatorChain } from '../../core/containers/isolator-chain';
import type { IsolationTarget, Isolator } from '../../core/contracts/isolator';
import type { LaunchPlan } from '../../core/contracts/launch';
import { launcherBinary, serializePlan } from '../../core/launcher/index';
import { buildSpec } from '../../plugins/runtime-oci/spec';
import { compileProfile, DOCKER_DEFAULT_PROFILE, hostAbi, SeccompIsolator } from '../../plugins/isolator-seccomp/index';
import { expectOk, startDaemon, type RunningDaemon } from '../helpers/daemon';
import { hasCommand, isRoot, rootReason } from '../helpers/env';
import { pushBusybox } from '../helpers/fixtures';
import { startRegistry, type RunningRegistry } from '../helpers/registry';
import { ContainerHarness } from '../helpers/rootfs';

const basePlan = (over: Partial<LaunchPlan> = {}): LaunchPlan => ({
  namespaces: ['pid', 'mount'],
  rootfs: '/r',
  mounts: [],
  maskedPaths: [],
  readonlyPaths: [],
  capabilities: [],
  noNewPrivileges: false,
  process: { args: ['sh'], env: [], cwd: '/', uid: 0, gid: 0, additionalGids: [], terminal: false },
  ...over,
});

describe('seccomp in the launch plan (no root)', () => {
  const filter = compileProfile(DOCKER_DEFAULT_PROFILE, { abi: 'x86_64', capabilities: [], kernel: '6.18.0' });
  const target: IsolationTarget = { containerId: 'c1', stateDir: '/s', hostConfig: {} };

  it("the isolator puts the default profile in the plan, compiled for the plan's capabilities", () => {
    const iso = new SeccompIsolator('x86_64', '6.18.0');
    const plan = basePlan();
    iso.plan(target, plan);
    expect(plan.seccomp).toEqual({ bpf: filter.bpf, oci: filter.oci });
    expect(() => iso.plan(target, plan)).toThrow(/plan\.seccomp is already set/);
    const admin = basePlan({ capabilities: ['CAP_SYS_ADMIN'] });
    iso.plan(target, admin);
    expect(admin.seccomp!.bpf).not.toBe(filter.bpf);
    expect(JSON.stringify(admin.seccomp!.oci)).toContain('"unshare"');
  });

  it('no filter for seccomp=unconfined or --privileged; a profile of its own even when privileged', () => {
    const iso = new SeccompIsolator('x86_64', '6.18.0');
    for (const hostConfig of [{ SecurityOpt: ['seccomp=unconfined'] }, { SecurityOpt: ['seccomp:unconfined'] }, { Privileged: true }, { Privileged: true, SecurityOpt: ['seccomp=builtin'] }]) {
      const plan = basePlan();
      iso.plan({ ...target, hostConfig }, plan);
      expect(plan.seccomp, JSON.stringify(hostConfig)).toBeUndefined();
    }
    const own = basePlan();
    iso.plan({ ...target, hostConfig: { Privileged: true, SecurityOpt: ['seccomp={"defaultAction":"SCMP_ACT_LOG"}'] } }, own);
    expect(own.seccomp!.oci).toMatchObject({ defaultAction: 'SCMP_ACT_LOG', syscalls: [] });
  });

  it('serialises the session keyring for the launcher', () => {
    expect(serializePlan(basePlan({ sessionKeyring: '_ses.abc' }), { stateDir: '/s' })).toMatch(/^session-keyring _ses\.abc$/m);
    expect(serializePlan(basePlan(), { stateDir: '/s' })).not.toMatch(/^session-keyring/m);
  });

  it('serialises as one `seccomp HEX` line; a plan without a filter reads as before', () => {
    const text = serializePlan(basePlan({ seccomp: { bpf: filter.bpf } }), { stateDir: '/s' });
    expect(text.split('\n').filter((l) => l.startsWith('seccomp '))).toEqual([`seccomp ${filter.bpf}`]);
    expect(serializePlan(basePlan(), { stateDir: '/s' })).not.toMatch(/^seccomp/m);
    expect(() => serializePlan(basePlan({ seccomp: { bpf: 'abc' } }), { stateDir: '/s' })).toThrow(/seccomp\.bpf must be hex/);
    expect(() => serializePlan(basePlan({ seccomp: { bpf: 'zz'.repeat(8) } }), { stateDir: '/s' })).toThrow(/seccomp\.bpf must be hex/);
    expect(() => serializePlan(basePlan({ seccomp: { bpf: '06000000'.repeat(2 * 4097) } }), { stateDir: '/s' })).toThrow(/4097 instructions, more than 4096/);
  });

  it('runtime.oci copies the OCI form to linux.seccomp', () => {
    const plan = basePlan({ seccomp: { bpf: filter.bpf, oci: filter.oci } });
    expect(buildSpec(plan).linux.seccomp).toEqual(filter.oci);
    expect(buildSpec(basePlan()).linux).not.toHaveProperty('seccomp');
  });

  it('the launcher refuses a malformed filter with `error seccomp: ...`, naming the line', () => {
    const dir = mkdtempSync('/tmp/berth-seccomp-plan-');
    try {
      const run = (seccompLines: string[]) => {
        writeFileSync(join(dir, 'plan'), ['berth-plan 1', `state-dir ${dir}`, 'rootfs /r', 'arg true', ...seccompLines, ''].join('\n'));
        // fd 3 is the launcher's status channel: the error line berthd would read.
        const res = spawnSync(launcherBinary(), [join(dir, 'plan')], { stdio: ['ignore', 'pipe', 'pipe', 'pipe'], encoding: 'utf8' });
        expect(res.status).not.toBe(0);
        return String(res.output[3]);
      };
      expect(run(['seccomp 0600000000000'])).toMatch(/^error seccomp: the filter on line 5 is 13 hex digits, not a whole number of 16-digit instructions\n/);
      expect(run(['seccomp 060000000000ff7g'])).toMatch(/^error seccomp: the filter on line 5 is not hex \(`g` at digit 15\)/);
      expect(run(['seccomp '])).toMatch(/^error seccomp: the filter on line 5 is 0 hex digits/);
      expect(run(['seccomp 060000000000ff7f', 'seccomp 060000000000ff7f'])).toMatch(/^error seccomp: a second filter on line 6/);
      expect(run(['seccomp ' + '0600000000000000'.repeat(4097)])).toMatch(/^error seccomp: the filter on line 5 has more than 4096 instructions/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** Prints what the kernel answers to calls a busybox cannot make: clone3, and getpid through i386's int 0x80. */
const PROBE_C = String.raw`
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "i386")) {
    long ret = 20; /* __NR_getpid in arch/x86/entry/syscalls/syscall_32.tbl */
    __asm__ volatile("int $0x80" : "+a"(ret) : : "memory", "r8", "r9", "r10", "r11");
    printf("i386-getpid %ld\n", ret);
    return 0;
  }
  long r = syscall(435, NULL, 0); /* clone3 with no args: EINVAL from the kernel, ENOSYS from the filter */
  printf("clone3 errno %d\n", r < 0 ? errno : 0);
  return 0;
}
`;

/** Runs isolators as berthd does with its config list: one chain per start, phase by phase. */
function stacked(isolators: Isolator[]): Isolator {
  let chain = IsolatorChain.of(isolators);
  return {
    name: 'stacked',
    // The chain's prepare runs each isolator's setup and then its plan, in order.
    plan: (t, p) => (chain = IsolatorChain.of(isolators)).prepare(t, p),
    attach: (t, pid) => chain.attach(t, pid),
    async cleanup(t) {
      const errors: Error[] = [];
      await IsolatorChain.of(isolators).cleanup(t, (err) => errors.push(err));
      if (errors.length) throw errors[0];
    },
  };
}

describe.skipIf(!isRoot || !hostAbi())(`seccomp in real containers, no daemon (${isRoot ? (hostAbi() ? 'root' : `no table for ${process.arch}`) : rootReason})`, () => {
  let withFilter: ContainerHarness;
  let without: ContainerHarness;
  let i386Works = false;

  beforeAll(async () => {
    withFilter = await new ContainerHarness().init();
    without = await new ContainerHarness().init();
    withFilter.isolator = stacked([withFilter.isolator, new SeccompIsolator(hostAbi()!)]);
    for (const h of [withFilter, without]) {
      mkdirSync(join(h.rootfs, 'mnt'));
      writeFileSync(join(h.base, 'probe.c'), PROBE_C);
      execFileSync('gcc', ['-static', '-O2', '-o', join(h.rootfs, 'bin', 'probe'), join(h.base, 'probe.c')]);
    }
    // int 0x80 needs IA32 emulation in the host kernel: ask the probe outside any container.
    if (process.arch === 'x64') {
      const res = spawnSync(join(without.rootfs, 'bin', 'probe'), ['i386'], { encoding: 'utf8' });
      i386Works = res.status === 0 && /^i386-getpid [1-9]\d*$/m.test(res.stdout);
    }
  }, 60_000);

  afterAll(() => {
    for (const h of [withFilter, without]) {
      if (!h) continue;
      expect(h.leftoverMounts()).toEqual([]);
      h.dispose();
    }
  });

  const status = (stdout: string, field: string) => stdout.match(new RegExp(`^${field}:\\s*(\\S+)`, 'm'))?.[1];

  it('the kernel reports the filter (Seccomp: 2) and ordinary programs run as before', async () => {
    const res = await withFilter.run(['sh', '-c', 'cat /proc/self/status; echo hi | tr a-z A-Z; ls / | wc -l; sleep 0.1 && echo slept; id -u']);
    expect(res.exit.exitCode).toBe(0);
    expect(status(res.stdout, 'Seccomp')).toBe('2');
    expect(status(res.stdout, 'Seccomp_filters')).toBe('1');
    expect(res.stdout).toContain('HI\n');
    expect(res.stdout).toContain('slept\n');
    expect(res.stdout).toMatch(/^0$/m);
    expect(Number(res.stdout.match(/^(\d+)$/m)![1])).toBeGreaterThan(5); // ls / | wc -l
  });

  it('without the isolator there is no filter (Seccomp: 0)', async () => {
    const res = await without.run(['cat', '/proc/self/status']);
    expect(res.exit.exitCode).toBe(0);
    expect(status(res.stdout, 'Seccomp')).toBe('0');
  });

  it('refuses unshare -r, which the default capabilities allow, with EPERM; CAP_SYS_ADMIN opens mount and unshare, as in Docker', async () => {
    const control = await without.run(['sh', '-c', 'busybox unshare -r true && echo unshared-r']);
    expect(control.stdout).toBe('unshared-r\n');
    const res = await withFilter.run(['sh', '-c', 'busybox unshare -r true && echo unshared-r; true']);
    expect(res.stdout).toBe('');
    expect(res.stderr).toMatch(/unshare.*Operation not permitted/);
    const admin = await withFilter.run(['sh', '-c', 'grep "^Seccomp:" /proc/self/status; mount -t tmpfs none /mnt && echo mounted; busybox unshare -m true && echo unshared-m'], {
      hostConfig: { CapAdd: ['SYS_ADMIN'] },
    });
    expect(admin.stdout).toMatch(/^Seccomp:\s+2\nmounted\nunshared-m\n$/);
  });

  it('answers clone3 with ENOSYS (so libc falls back to clone); i386 calls get the same profile', async () => {
    const control = await without.run(['probe']);
    expect(control.stdout).toMatch(/^clone3 errno (?!38\b)\d+$/m);
    const res = await withFilter.run(['probe']);
    expect(res.stdout).toBe('clone3 errno 38\n');
    if (!i386Works) return; // the host kernel runs no i386 code at all: nothing to refuse
    expect((await without.run(['probe', 'i386'])).stdout).toMatch(/^i386-getpid [1-9]\d*$/m);
    expect((await withFilter.run(['probe', 'i386'])).stdout).toMatch(/^i386-getpid [1-9]\d*$/m);
  });

  it('installs in both orders: before the capability drop (no no_new_privs, non-root user) and last (no_new_privs)', async () => {
    const asUser = await withFilter.run(['sh', '-c', 'grep -E "^(Seccomp|NoNewPrivs):" /proc/self/status; probe; id -u'], { process: { uid: 1000, gid: 1000 } });
    expect(asUser.exit.exitCode).toBe(0);
    expect(status(asUser.stdout, 'Seccomp')).toBe('2');
    expect(status(asUser.stdout, 'NoNewPrivs')).toBe('0');
    expect(asUser.stdout).toContain('clone3 errno 38\n');
    expect(asUser.stdout).toMatch(/^1000$/m);

    const nnp = stacked([withFilter.isolator, { name: 'nnp', plan: (_t, p) => void (p.noNewPrivileges = true) }]);
    const saved = withFilter.isolator;
    withFilter.isolator = nnp;
    try {
      const res = await withFilter.run(['sh', '-c', 'grep -E "^(Seccomp|NoNewPrivs):" /proc/self/status; busybox unshare -r true || echo refused']);
      expect(status(res.stdout, 'Seccomp')).toBe('2');
      expect(status(res.stdout, 'NoNewPrivs')).toBe('1');
      expect(res.stdout).toContain('refused\n');
    } finally {
      withFilter.isolator = saved;
    }
  });

  it('a program the kernel refuses fails the start with `seccomp: ...`', async () => {
    const bad: Isolator = { name: 'bad', plan: (_t, p) => void (p.seccomp = { bpf: '2000000004000000' }) }; // ld, no ret
    const saved = without.isolator;
    without.isolator = stacked([saved, bad]);
    try {
      await expect(without.start(['true'])).rejects.toThrow(/seccomp: install the filter \(1 instructions\): Invalid argument/);
    } finally {
      without.isolator = saved;
    }
  });
});

describe.skipIf(!isRoot || !hostAbi() || !hasCommand('runc'))(`the default profile through runtime.oci (${isRoot ? (hasCommand('runc') ? 'root' : 'runc not installed') : rootReason})`, () => {
  let registry: RunningRegistry;
  let daemon: RunningDaemon;
  let img: string;

  beforeAll(async () => {
    registry = await startRegistry();
    img = `${registry.host}/seccomp/busybox:latest`;
    await pushBusybox(registry.host, 'seccomp/busybox:latest', {});
    daemon = await startDaemon({ config: { runtime: 'oci', registries: { [registry.host]: { insecure: true } }, requiredPlugins: ['isolator.seccomp', 'runtime.oci'] } });
    expectOk(await daemon.cli(['pull', '-q', img]));
  }, 120_000);

  afterAll(async () => {
    if (daemon) {
      await daemon.removeAllContainers();
      await daemon.stop();
    }
    await registry?.stop();
  });

  it('runc builds the filter from the OCI form: Seccomp 2, unshare -r refused, unconfined lifts it, CAP_SYS_ADMIN opens mount', async () => {
    const script = 'grep "^Seccomp:" /proc/self/status; busybox unshare -r true && echo unshared; true';
    const run = expectOk(await daemon.cli(['run', '--rm', img, 'sh', '-c', script]));
    expect(run.stdout).toMatch(/^Seccomp:\s+2\n$/);
    expect(run.stderr).toMatch(/unshare.*Operation not permitted/);
    const unconfined = expectOk(await daemon.cli(['run', '--rm', '--security-opt', 'seccomp=unconfined', img, 'sh', '-c', script]));
    expect(unconfined.stdout).toMatch(/^Seccomp:\s+0\nunshared\n$/);
    // --cap-add SYS_ADMIN rather than --privileged: this runc cannot start privileged containers here ("unable to apply caps").
    const admin = expectOk(await daemon.cli(['run', '--rm', '--cap-add', 'SYS_ADMIN', img, 'sh', '-c', 'grep "^Seccomp:" /proc/self/status; mount -t tmpfs none /tmp && echo mounted']));
    expect(admin.stdout).toMatch(/^Seccomp:\s+2\nmounted\n$/);
  }, 120_000);
});

/** Prints the session keyring as KEYCTL_DESCRIBE gives it: `type;uid;gid;perm;description`. */
const KEYRING_PROBE_C = String.raw`
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/keyctl.h>
int main(void) {
  char d[256] = "";
  if (syscall(SYS_keyctl, KEYCTL_DESCRIBE, KEY_SPEC_SESSION_KEYRING, d, sizeof d - 1) < 0) { perror("describe"); return 1; }
  printf("%s\n", d);
  return 0;
}
`;

describe.skipIf(!isRoot)(`the launcher's session keyring, with and without a user namespace (${isRoot ? 'root' : rootReason})`, () => {
  const map = [{ containerID: 0, hostID: 100000, size: 65536 }];
  let plain: ContainerHarness;
  let userns: ContainerHarness;
  const withKeyring = (iso: Isolator): Isolator => stacked([iso, { name: 'keyring', plan: (t, p) => void (p.sessionKeyring = `_ses.${t.containerId}`) }]);

  beforeAll(async () => {
    plain = await new ContainerHarness().init();
    userns = await new ContainerHarness().init({ userNamespace: { uidMappings: map, gidMappings: map } });
    for (const h of [plain, userns]) {
      writeFileSync(join(h.base, 'keyring.c'), KEYRING_PROBE_C);
      execFileSync('gcc', ['-static', '-O2', '-o', join(h.rootfs, 'bin', 'keyring'), join(h.base, 'keyring.c')]);
      h.isolator = withKeyring(h.isolator);
    }
    // Like Docker's remapped root: the rootfs belongs to the mapped root, its path is searchable.
    execFileSync('chmod', ['711', userns.base]);
    execFileSync('chown', ['-R', '100000:100000', userns.rootfs]);
  }, 60_000);

  afterAll(() => {
    for (const h of [plain, userns]) {
      if (!h) continue;
      expect(h.leftoverMounts()).toEqual([]);
      h.dispose();
    }
  });

  const fields = (out: string) => {
    const [type, uid, , perm, name] = out.trim().split(';');
    return { type, uid, perm: parseInt(perm, 16), name };
  };

  it('joins `_ses.<id>`, searchable by its owner, so exec sessions (same uid) can join it', async () => {
    const res = await plain.run(['keyring']);
    expect(res.exit.exitCode).toBe(0);
    const k = fields(res.stdout);
    expect(k).toMatchObject({ type: 'keyring', uid: '0', name: `_ses.${res.id}` });
    expect(k.perm & 0x80000).toBe(0x80000); // KEY_USR_SEARCH
  });

  it('in a user namespace the keyring belongs to the mapped root and is searchable by "other"', async () => {
    const res = await userns.run(['keyring']);
    expect(res.exit.exitCode).toBe(0);
    const k = fields(res.stdout);
    expect(k).toMatchObject({ type: 'keyring', name: `_ses.${res.id}` });
    expect(k.uid).toBe('0'); // as the container sees its owner: its own root (100000 outside)
    expect(k.perm & 0x8).toBe(0x8); // KEY_OTH_SEARCH
  });
});
