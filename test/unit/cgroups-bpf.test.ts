/**
 * The cgroup v2 device filter: the BPF program generated from a device policy (its exact
 * instructions and encoding), its decisions for a table of (type, major, minor, access) cases,
 * evaluated by a small interpreter of the ops it uses and, as root, by the kernel itself (the
 * program attached to a scratch cgroup2 directory below this process's own, a child process in it
 * making and opening the devices), and the verifier's log when the kernel refuses a program.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { and32Imm, bpf, type BpfInsn, encodeInsns, exit, jneImm, jneReg, loadWord, mov32Imm, mov32Reg, R0, R1, R2, R3, R4, R5, rsh32Imm } from '../../core/sys/bpf';
import { DEFAULT_DEVICE_RULES, devicePolicy, type DevicePolicy, deviceProgram, parseDeviceRule } from '../../plugins/isolator-cgroups/devices';
import cgroupsPlugin from '../../plugins/isolator-cgroups/index';
import { detectLayout, parseCgroupMounts, parseSelfCgroup } from '../../plugins/isolator-cgroups/layout';
import { isRoot, rootReason } from '../helpers/env';

type Access = 'r' | 'w' | 'rw' | 'm';
const TYPE = { c: 2, b: 1 } as const;
const ACCESS_BITS = (a: Access) => (a.includes('r') ? 2 : 0) | (a.includes('w') ? 4 : 0) | (a === 'm' ? 1 : 0);

/** Run the program on one bpf_cgroup_dev_ctx; only the ops deviceProgram emits are known. */
function evaluate(insns: readonly BpfInsn[], type: 'c' | 'b', major: number, minor: number, access: Access): number {
  const ctx = [(ACCESS_BITS(access) << 16) | TYPE[type], major, minor];
  const reg = new Array<number>(11).fill(0);
  for (let pc = 0, steps = 0; pc < insns.length && steps < 10_000; pc++, steps++) {
    const i = insns[pc];
    switch (i.code) {
      case 0x61: // ldx w
        expect(i.src).toBe(R1);
        reg[i.dst] = ctx[i.off / 4];
        break;
      case 0x54:
        reg[i.dst] = (reg[i.dst] & i.imm) >>> 0;
        break;
      case 0x74:
        reg[i.dst] = reg[i.dst] >>> i.imm;
        break;
      case 0xbc:
        reg[i.dst] = reg[i.src] >>> 0;
        break;
      case 0xb4:
        reg[i.dst] = i.imm >>> 0;
        break;
      case 0x55:
        if (reg[i.dst] !== i.imm) pc += i.off;
        break;
      case 0x5d:
        if (reg[i.dst] !== reg[i.src]) pc += i.off;
        break;
      case 0x95:
        return reg[R0];
      default:
        throw new Error(`unexpected opcode 0x${i.code.toString(16)} at ${pc}`);
    }
  }
  throw new Error('ran off the end of the program');
}

const withRules = (...extra: string[]): DevicePolicy => devicePolicy({ DeviceCgroupRules: extra });

/** [policy name, type, major, minor, access, allowed]. */
const TABLE: [string, 'c' | 'b', number, number, Access, boolean][] = [
  ['default', 'c', 1, 3, 'rw', true], // /dev/null
  ['default', 'c', 1, 5, 'r', true], // /dev/zero
  ['default', 'c', 1, 9, 'r', true], // /dev/urandom
  ['default', 'c', 5, 0, 'rw', true], // /dev/tty
  ['default', 'c', 5, 2, 'rw', true], // /dev/ptmx
  ['default', 'c', 136, 7, 'rw', true], // /dev/pts/7
  ['default', 'c', 1, 1, 'r', false], // /dev/mem
  ['default', 'c', 10, 232, 'rw', false], // kvm
  ['default', 'c', 4, 1, 'w', false], // tty1
  ['default', 'c', 10, 200, 'r', false], // tun
  ['default', 'c', 10, 183, 'r', false], // hwrng
  ['default', 'b', 7, 0, 'r', false], // loop0
  ['default', 'b', 7, 0, 'm', true], // mknod of any device is allowed ...
  ['default', 'c', 10, 232, 'm', true], // ... opening it is not
  ['default', 'b', 1, 3, 'rw', false], // the type counts: block 1:3 is not /dev/null
  ['loop0 rw', 'b', 7, 0, 'r', true],
  ['loop0 rw', 'b', 7, 0, 'rw', true],
  ['loop0 rw', 'b', 7, 1, 'r', false],
  ['loop0 rw', 'c', 7, 0, 'r', false],
  ['tun r', 'c', 10, 200, 'r', true],
  ['tun r', 'c', 10, 200, 'w', false], // access must be a subset of the rule's
  ['tun r', 'c', 10, 200, 'rw', false],
  ['major 10', 'c', 10, 183, 'rw', true],
  ['major 10', 'c', 11, 183, 'rw', false],
  ['any 4:1', 'c', 4, 1, 'w', true],
  ['any 4:1', 'b', 4, 1, 'w', true],
  ['privileged', 'c', 10, 232, 'rw', true],
  ['privileged', 'b', 7, 0, 'rw', true],
];

const POLICIES: Record<string, DevicePolicy> = {
  default: devicePolicy({}),
  'loop0 rw': withRules('b 7:0 rw'),
  'tun r': withRules('c 10:200 r'),
  'major 10': withRules('c 10:* rwm'),
  'any 4:1': withRules('a 4:1 rwm'),
  privileged: devicePolicy({ Privileged: true }),
};

describe('cgroup device program generator', () => {
  it('derives the default policy from the rule list the v1 path writes', () => {
    expect(devicePolicy({})).toEqual({ allowAll: false, rules: DEFAULT_DEVICE_RULES.map((r) => parseDeviceRule(r, 'x')) });
    expect(devicePolicy({ Privileged: true, DeviceCgroupRules: ['c 1:1 r'] })).toEqual({ allowAll: true, rules: [] });
    expect(withRules('a *:* rwm').allowAll).toBe(true);
    // Duplicates and access letters in any order collapse.
    expect(withRules('c 1:3 mwr', 'c 1:3 rwm').rules.filter((r) => r.major === 1 && r.minor === 3)).toHaveLength(1);
  });

  it('emits the prelude, one block per rule with jumps past its accept, and a final deny', () => {
    const insns = deviceProgram({ allowAll: false, rules: ['c *:* m', 'c 1:3 rwm', 'b 8:* r', 'a 4:1 rwm'].map((r) => parseDeviceRule(r, 'x')) });
    expect(insns).toEqual([
      loadWord(R2, R1, 0),
      and32Imm(R2, 0xffff), // type
      loadWord(R3, R1, 0),
      rsh32Imm(R3, 16), // access
      loadWord(R4, R1, 4), // major
      loadWord(R5, R1, 8), // minor
      // c *:* m
      jneImm(R2, 2, 5),
      mov32Reg(R1, R3),
      and32Imm(R1, 1),
      jneReg(R1, R3, 2),
      mov32Imm(R0, 1),
      exit(),
      // c 1:3 rwm: no access check
      jneImm(R2, 2, 4),
      jneImm(R4, 1, 3),
      jneImm(R5, 3, 2),
      mov32Imm(R0, 1),
      exit(),
      // b 8:* r
      jneImm(R2, 1, 6),
      mov32Reg(R1, R3),
      and32Imm(R1, 2),
      jneReg(R1, R3, 3),
      jneImm(R4, 8, 2),
      mov32Imm(R0, 1),
      exit(),
      // a 4:1 rwm: no type check
      jneImm(R4, 4, 3),
      jneImm(R5, 1, 2),
      mov32Imm(R0, 1),
      exit(),
      mov32Imm(R0, 0),
      exit(),
    ]);
    expect(deviceProgram({ allowAll: true, rules: [] })).toEqual([mov32Imm(R0, 1), exit()]);
  });

  it('encodes instructions as struct bpf_insn (code, dst|src<<4, off, imm; little-endian)', () => {
    expect(encodeInsns([loadWord(R2, R1, 8), jneImm(R4, 232, -3), mov32Imm(R0, 1), exit()]).toString('hex')).toBe(
      ['6112080000000000', '5504fdffe8000000', 'b400000001000000', '9500000000000000'].join(''),
    );
  });

  it('decides each (type, major, minor, access) as the rules say', () => {
    const got = TABLE.map(([p, type, major, minor, access]) => [p, type, major, minor, access, evaluate(deviceProgram(POLICIES[p]), type, major, minor, access) === 1]);
    expect(got).toEqual(TABLE);
  });

  it('refuses bad rules and devices, naming the key', () => {
    expect(() => withRules('c 1:3 rwx')).toThrow(/HostConfig.DeviceCgroupRules\[0\]: invalid device cgroup rule format: 'c 1:3 rwx'/);
    expect(() => withRules('c 99999:1 r')).toThrow(/DeviceCgroupRules\[0\].*out of range/);
    expect(() => devicePolicy({ DeviceCgroupRules: 'c 1:3 r' })).toThrow(/HostConfig.DeviceCgroupRules: expected an array/);
    expect(() => devicePolicy({ Devices: [{ PathOnHost: '/dev/berth-no-such-device' }] })).toThrow(/custom device "\/dev\/berth-no-such-device": no such file or directory/);
    expect(() => devicePolicy({ Devices: [{ PathOnHost: '/etc/hostname' }] })).toThrow(/custom device "\/etc\/hostname": not a device node/);
    expect(() => devicePolicy({ Devices: [{ PathOnHost: '/dev/null', CgroupPermissions: 'rwx' }] })).toThrow(/HostConfig.Devices\[0\].CgroupPermissions: invalid device mode/);
  });

  it('maps --device host nodes (and the nodes in a host directory) to rules', () => {
    const rules = devicePolicy({ Devices: [{ PathOnHost: '/dev/null', PathInContainer: '/dev/x', CgroupPermissions: 'r' }] }).rules;
    expect(rules).toContainEqual({ type: 'c', major: 1, minor: 3, access: 'r' });
    const dir = mkdtempSync('/tmp/berth-devdir-');
    try {
      // A symlink below the directory is not followed (Docker's walk does not either).
      symlinkSync('/dev/zero', join(dir, 'link'));
      mkdirSync(join(dir, 'sub'));
      execFileSync('mknod', [join(dir, 'sub', 'loop'), 'b', '7', '0']);
      expect(devicePolicy({ Devices: [{ PathOnHost: dir, CgroupPermissions: 'rw' }] }).rules.slice(DEFAULT_DEVICE_RULES.length)).toEqual([{ type: 'b', major: 7, minor: 0, access: 'rw' }]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('validates the hierarchy key and keeps only the hierarchies asked for', () => {
    expect(() => cgroupsPlugin.parseConfig!({ hierarchy: 'v3' })).toThrow(/hierarchy: expected "auto".*got "v3"/);
    expect(cgroupsPlugin.parseConfig!({ hierarchy: 'v2' })).toEqual({ parent: 'berth', hierarchy: 'v2', cpuRtRuntime: 0 });
    const src = {
      mountinfo: '32 31 0:29 / /sys/fs/cgroup/devices rw - cgroup cgroup rw,devices\n41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n',
      selfCgroup: '5:devices:/\n0::/user.slice/x\n',
    };
    expect(detectLayout(src).version).toBe('hybrid');
    const v2 = detectLayout(src, false, 'v2');
    expect(v2.version).toBe('2');
    expect(v2.hierarchies.map((h) => h.ownDir)).toEqual(['/sys/fs/cgroup/unified/user.slice/x']);
    expect(detectLayout(src, false, 'v1').hierarchies.map((h) => h.kind)).toEqual(['v1']);
    expect(() => detectLayout({ ...src, mountinfo: src.mountinfo.split('\n')[0] }, false, 'v2')).toThrow(/cgroup2 \(as hierarchy "v2" asks\)/);
  });
});

/** This process's own cgroup2 directory (from /proc/self/cgroup's 0:: line), if v2 is mounted. */
function ownV2Dir(): string | undefined {
  const mount = parseCgroupMounts(readFileSync('/proc/self/mountinfo', 'utf8')).find((m) => m.type === 'cgroup2');
  const own = parseSelfCgroup(readFileSync('/proc/self/cgroup', 'utf8')).find((e) => e.id === '0');
  return mount && own ? join(mount.mountPoint, own.path) : undefined;
}

const v2Dir = isRoot ? ownV2Dir() : undefined;
const skipReason = !isRoot ? rootReason : !v2Dir ? 'no cgroup2 hierarchy is mounted' : '';

describe.skipIf(!!skipReason)(`cgroup device programs in the kernel${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  let cg: string;
  let nodes: string;

  beforeAll(() => {
    cg = join(v2Dir!, `berth-bpf-test-${process.pid}`);
    mkdirSync(cg);
    // Device nodes made here must be on a filesystem mounted without nodev (as / is here).
    nodes = mkdtempSync('/tmp/berth-bpf-nodes-');
  });

  afterAll(() => {
    rmSync(nodes, { recursive: true, force: true });
    // With its program still attached, as the isolator's cleanup leaves it: rmdir detaches it.
    rmdirSync(cg);
  });

  /** What the kernel decides, per row: a child joins the scratch cgroup and mknods/opens each device. */
  function kernelDecides(rows: typeof TABLE): boolean[] {
    const script = [
      `echo $$ > ${cg}/cgroup.procs`,
      ...rows.map(([, type, major, minor, access], i) => {
        const node = `${nodes}/n${i}`;
        const open = access === 'm' ? `mknod ${node} ${type} ${major} ${minor}` : `mknod ${node} ${type} ${major} ${minor} 2>/dev/null || true; exec 3${{ r: '<', w: '>', rw: '<>' }[access]} ${node}`;
        // EPERM is the filter's answer; any other failure (no driver: ENXIO, ENODEV) means it let the open through.
        return `(${open}) 2>&1 | grep -q 'Operation not permitted' && echo deny || echo allow; rm -f ${node}`;
      }),
    ].join('\n');
    return execFileSync('sh', ['-c', script], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .map((l) => l === 'allow');
  }

  it('loads and attaches each policy; the kernel decides the table as the interpreter does', () => {
    for (const [name, policy] of Object.entries(POLICIES)) {
      const rows = TABLE.filter(([p]) => p === name);
      bpf.setDeviceProgram(cg, deviceProgram(policy));
      expect(bpf.devicePrograms(cg)).toHaveLength(1);
      const decided = kernelDecides(rows);
      expect(rows.map((r, i) => [...r.slice(0, 5), decided[i]])).toEqual(rows);
    }
  });

  it('replaces the attached program instead of adding one', () => {
    bpf.setDeviceProgram(cg, deviceProgram(POLICIES.default));
    const [first] = bpf.devicePrograms(cg);
    bpf.setDeviceProgram(cg, deviceProgram(POLICIES['tun r']));
    const now = bpf.devicePrograms(cg);
    expect(now).toHaveLength(1);
    expect(now[0]).not.toBe(first);
  });

  it('reports the verifier log when the kernel refuses a program', () => {
    // R6 is never written: the verifier refuses to read it.
    const bad = [mov32Reg(R0, 6), exit()];
    const before = bpf.devicePrograms(cg);
    expect(() => bpf.setDeviceProgram(cg, bad)).toThrow(/bpf\(BPF_PROG_LOAD\): EACCES: the kernel refused the cgroup device program; verifier log:\n(.|\n)*R6 !read_ok/);
    expect(bpf.devicePrograms(cg)).toEqual(before);
  });
});
