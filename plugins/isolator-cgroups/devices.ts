/**
 * Which devices a container may use, as one allow list, and the two ways the kernel is told: the
 * v1 devices controller's allow/deny files, or on cgroup v2 a BPF_PROG_TYPE_CGROUP_DEVICE program
 * (v2 has no devices controller) generated here from the same list, in the shape runc and crun use.
 */
import { lstatSync, readdirSync, realpathSync, statSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { InvalidArgumentError, and32Imm, exit, jneImm, jneReg, loadWord, mov32Imm, mov32Reg, R0, R1, R2, R3, R4, R5, rsh32Imm, MAX_MAJOR, MAX_MINOR, splitDev, type BpfInsn } from '../../core/plugin';
import { type CgroupFs, writeControl } from './cgfs';

/**
 * Docker's default device rules for an unprivileged container (moby's DefaultLinuxSpec plus runc's
 * AllowedDevices): mknod of any device, and read/write of the harmless ones.
 */
export const DEFAULT_DEVICE_RULES = [
  'c *:* m', // mknod any char device
  'b *:* m', // mknod any block device
  'c 1:3 rwm', // /dev/null
  'c 1:5 rwm', // /dev/zero
  'c 1:7 rwm', // /dev/full
  'c 1:8 rwm', // /dev/random
  'c 1:9 rwm', // /dev/urandom
  'c 5:0 rwm', // /dev/tty
  'c 5:1 rwm', // /dev/console
  'c 5:2 rwm', // /dev/ptmx
  'c 136:* rwm', // /dev/pts/*
];

/** One allow rule, as the v1 devices controller writes it: `c 1:3 rwm`, `b *:* m`, `a *:* rwm`. */
export interface DeviceRule {
  type: 'a' | 'b' | 'c';
  major: number | '*';
  minor: number | '*';
  /** Some of r, w, m, in that order. */
  access: string;
}

/** What a container may open: everything (privileged) or only what the rules allow. */
export interface DevicePolicy {
  allowAll: boolean;
  rules: DeviceRule[];
}

/** moby's deviceCgroupRuleRegex. */
const RULE = /^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$/;
const ACCESS = /^[rwm]{1,3}$/;

const canonicalAccess = (access: string) => ['r', 'w', 'm'].filter((c) => access.includes(c)).join('');

export function parseDeviceRule(text: string, what: string): DeviceRule {
  const m = RULE.exec(text.trim());
  if (!m) throw new InvalidArgumentError(`${what}: invalid device cgroup rule format: '${text}' (expected e.g. 'c 1:3 rwm' or 'b 8:* r')`);
  const num = (s: string, max: number) => {
    if (s === '*') return '*';
    if (Number(s) > max) throw new InvalidArgumentError(`${what}: device number ${s} in '${text}' is out of range (major at most ${MAX_MAJOR}, minor at most ${MAX_MINOR})`);
    return Number(s);
  };
  return { type: m[1] as DeviceRule['type'], major: num(m[2], MAX_MAJOR), minor: num(m[3], MAX_MINOR), access: canonicalAccess(m[4]) };
}

export function formatDeviceRule(r: DeviceRule): string {
  return `${r.type} ${r.major}:${r.minor} ${r.access}`;
}

const DEFAULT_RULES: readonly DeviceRule[] = DEFAULT_DEVICE_RULES.map((r) => parseDeviceRule(r, 'default device rules'));

function ruleOf(st: Stats, access: string): DeviceRule | undefined {
  if (!st.isCharacterDevice() && !st.isBlockDevice()) return undefined;
  const { major, minor } = splitDev(st.rdev);
  return { type: st.isCharacterDevice() ? 'c' : 'b', major, minor, access };
}

/** Every device node below `dir`, without following symlinks (Docker's walk for `--device /dev/snd`). */
function devicesBelow(dir: string, access: string, out: DeviceRule[]): void {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = lstatSync(p);
    if (st.isDirectory()) devicesBelow(p, access, out);
    else {
      const rule = ruleOf(st, access);
      if (rule) out.push(rule);
    }
  }
}

/** The rules for HostConfig.Devices: each host device node (or the nodes in a host directory). */
function mappedDeviceRules(devices: unknown): DeviceRule[] {
  if (devices === undefined || devices === null) return [];
  if (!Array.isArray(devices)) throw new InvalidArgumentError('HostConfig.Devices: expected an array of {PathOnHost, PathInContainer, CgroupPermissions}');
  const out: DeviceRule[] = [];
  devices.forEach((d: { PathOnHost?: unknown; CgroupPermissions?: unknown }, i) => {
    const key = `HostConfig.Devices[${i}]`;
    if (typeof d?.PathOnHost !== 'string' || !d.PathOnHost) throw new InvalidArgumentError(`${key}.PathOnHost: expected a host device path, e.g. /dev/loop0`);
    const perms = d.CgroupPermissions === undefined || d.CgroupPermissions === '' ? 'rwm' : d.CgroupPermissions;
    if (typeof perms !== 'string' || !ACCESS.test(perms)) throw new InvalidArgumentError(`${key}.CgroupPermissions: invalid device mode: ${JSON.stringify(perms)} (expected some of r, w, m)`);
    const access = canonicalAccess(perms);
    try {
      const path = realpathSync(d.PathOnHost);
      const st = statSync(path);
      if (st.isDirectory()) return devicesBelow(path, access, out);
      const rule = ruleOf(st, access);
      if (!rule) throw new Error('not a device node');
      out.push(rule);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      const why = e.code === 'ENOENT' ? 'no such file or directory' : (e.code ?? e.message);
      throw new InvalidArgumentError(`error gathering device information while adding custom device ${JSON.stringify(d.PathOnHost)}: ${why}`);
    }
  });
  return out;
}

/**
 * The container's device policy from its HostConfig: Privileged allows every device; otherwise
 * Docker's defaults, plus `--device` nodes (Devices) and `--device-cgroup-rule` (DeviceCgroupRules).
 */
export function devicePolicy(hc: Record<string, unknown>): DevicePolicy {
  if (hc.Privileged === true) return { allowAll: true, rules: [] };
  const extra = hc.DeviceCgroupRules;
  if (extra !== undefined && extra !== null && !(Array.isArray(extra) && extra.every((r) => typeof r === 'string'))) {
    throw new InvalidArgumentError('HostConfig.DeviceCgroupRules: expected an array of rules like "c 1:3 rwm"');
  }
  const rules = [...DEFAULT_RULES, ...mappedDeviceRules(hc.Devices), ...((extra as string[] | null) ?? []).map((r, i) => parseDeviceRule(r, `HostConfig.DeviceCgroupRules[${i}]`))];
  if (rules.some((r) => r.type === 'a' && r.major === '*' && r.minor === '*' && r.access === 'rwm')) return { allowAll: true, rules: [] };
  const unique = new Map(rules.map((r) => [formatDeviceRule(r), r]));
  return { allowAll: false, rules: [...unique.values()] };
}

/** v1: deny everything, then allow the list; privileged containers get every device. */
export function applyDevicesV1(fs: CgroupFs, dir: string, policy: DevicePolicy): void {
  if (policy.allowAll) {
    writeControl(fs, `${dir}/devices.allow`, 'a');
    return;
  }
  writeControl(fs, `${dir}/devices.deny`, 'a');
  for (const rule of policy.rules) writeControl(fs, `${dir}/devices.allow`, formatDeviceRule(rule));
}

/**
 * v1 on update: allow what is new, then deny what went (a deny removes exactly that exception), so
 * no device the old and new lists both allow is refused in between. Privileged never changes.
 */
export function updateDevicesV1(fs: CgroupFs, dir: string, before: DevicePolicy, after: DevicePolicy): void {
  if (before.allowAll || after.allowAll) return;
  const had = new Set(before.rules.map(formatDeviceRule));
  const has = new Set(after.rules.map(formatDeviceRule));
  for (const r of has) if (!had.has(r)) writeControl(fs, `${dir}/devices.allow`, r);
  for (const r of had) if (!has.has(r)) writeControl(fs, `${dir}/devices.deny`, r);
}

// struct bpf_cgroup_dev_ctx { u32 access_type (access << 16 | type); u32 major; u32 minor; }
const DEV_BLOCK = 1;
const DEV_CHAR = 2;
const ACC_MKNOD = 1;
const ACC_READ = 2;
const ACC_WRITE = 4;
const ACC_ALL = ACC_MKNOD | ACC_READ | ACC_WRITE;

const accessBits = (access: string) => (access.includes('r') ? ACC_READ : 0) | (access.includes('w') ? ACC_WRITE : 0) | (access.includes('m') ? ACC_MKNOD : 0);

/** One rule's block: each check that fails jumps past the block's `return 1`. */
function ruleBlock(r: DeviceRule): BpfInsn[] {
  const checks: ((skip: number) => BpfInsn[])[] = [];
  if (r.type !== 'a') checks.push((skip) => [jneImm(R2, r.type === 'c' ? DEV_CHAR : DEV_BLOCK, skip)]);
  const bits = accessBits(r.access);
  // Every bit asked for must be allowed: (access & allowed) == access.
  if (bits !== ACC_ALL) checks.push((skip) => [mov32Reg(R1, R3), and32Imm(R1, bits), jneReg(R1, R3, skip)]);
  if (r.major !== '*') checks.push((skip) => [jneImm(R4, r.major as number, skip)]);
  if (r.minor !== '*') checks.push((skip) => [jneImm(R5, r.minor as number, skip)]);
  // Built back to front, so each check's jump (its last instruction) knows how many follow it.
  let block = [mov32Imm(R0, 1), exit()];
  for (const check of checks.reverse()) block = [...check(block.length), ...block];
  return block;
}

/**
 * The cgroup device program for a policy (R1 = ctx): the type in R2, the access in R3, major in
 * R4, minor in R5; then one block per rule that returns 1 (allow) when it matches; else 0 (deny).
 */
export function deviceProgram(policy: DevicePolicy): BpfInsn[] {
  if (policy.allowAll) return [mov32Imm(R0, 1), exit()];
  const prelude = [loadWord(R2, R1, 0), and32Imm(R2, 0xffff), loadWord(R3, R1, 0), rsh32Imm(R3, 16), loadWord(R4, R1, 4), loadWord(R5, R1, 8)];
  return [...prelude, ...policy.rules.flatMap(ruleBlock), mov32Imm(R0, 0), exit()];
}
