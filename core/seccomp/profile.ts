/**
 * Docker's seccomp profile format (moby profiles/seccomp, the JSON `docker run --security-opt
 * seccomp=FILE` sends) and the `seccomp=` security option. Core checks both at create time, so a
 * bad profile is a 400 naming the key; isolator.seccomp compiles the checked profile into BPF.
 */
import { InvalidArgumentError } from '../contracts/errors';

export const SECCOMP_ACTIONS = ['SCMP_ACT_KILL', 'SCMP_ACT_KILL_THREAD', 'SCMP_ACT_KILL_PROCESS', 'SCMP_ACT_TRAP', 'SCMP_ACT_ERRNO', 'SCMP_ACT_TRACE', 'SCMP_ACT_LOG', 'SCMP_ACT_ALLOW'] as const;
export type SeccompAction = (typeof SECCOMP_ACTIONS)[number];

export const SECCOMP_OPERATORS = ['SCMP_CMP_NE', 'SCMP_CMP_LT', 'SCMP_CMP_LE', 'SCMP_CMP_EQ', 'SCMP_CMP_GE', 'SCMP_CMP_GT', 'SCMP_CMP_MASKED_EQ'] as const;
export type SeccompOperator = (typeof SECCOMP_OPERATORS)[number];

/** libseccomp's architecture names as profiles spell them. */
export const SECCOMP_ARCHES = [
  'SCMP_ARCH_X86',
  'SCMP_ARCH_X86_64',
  'SCMP_ARCH_X32',
  'SCMP_ARCH_ARM',
  'SCMP_ARCH_AARCH64',
  'SCMP_ARCH_MIPS',
  'SCMP_ARCH_MIPS64',
  'SCMP_ARCH_MIPS64N32',
  'SCMP_ARCH_MIPSEL',
  'SCMP_ARCH_MIPSEL64',
  'SCMP_ARCH_MIPSEL64N32',
  'SCMP_ARCH_PPC',
  'SCMP_ARCH_PPC64',
  'SCMP_ARCH_PPC64LE',
  'SCMP_ARCH_S390',
  'SCMP_ARCH_S390X',
  'SCMP_ARCH_PARISC',
  'SCMP_ARCH_PARISC64',
  'SCMP_ARCH_RISCV64',
] as const;
export type SeccompArch = (typeof SECCOMP_ARCHES)[number];

/** One comparison of a syscall argument: `(arg & value) == valueTwo` for MASKED_EQ, `arg OP value` otherwise. */
export interface SeccompArg {
  index: number;
  value: number;
  valueTwo: number;
  op: SeccompOperator;
}

/** When a rule applies: capabilities the container has, the host's Go arch name (amd64, arm64), a kernel. */
export interface SeccompCondition {
  caps?: string[];
  arches?: string[];
  minKernel?: string;
}

export interface SeccompRule {
  names: string[];
  action: SeccompAction;
  errnoRet?: number;
  args: SeccompArg[];
  includes: SeccompCondition;
  excludes: SeccompCondition;
}

export interface SeccompProfile {
  defaultAction: SeccompAction;
  defaultErrnoRet?: number;
  architectures: SeccompArch[];
  archMap: { architecture: SeccompArch; subArchitectures: SeccompArch[] }[];
  syscalls: SeccompRule[];
}

/** What `HostConfig.SecurityOpt` asks of seccomp: Docker's default profile, none, or a profile of its own. */
export type SeccompChoice = { kind: 'default' } | { kind: 'unconfined' } | { kind: 'profile'; profile: SeccompProfile };

type Raw = Record<string, unknown>;
const isObject = (v: unknown): v is Raw => typeof v === 'object' && v !== null && !Array.isArray(v);
const bad = (key: string, msg: string) => new InvalidArgumentError(`seccomp profile: ${key}: ${msg}`);
const shown = (v: unknown) => (v === undefined ? 'nothing' : JSON.stringify(v));

function oneOf<T extends string>(key: string, v: unknown, allowed: readonly T[]): T {
  if (typeof v !== 'string' || !allowed.includes(v as T)) throw bad(key, `unknown value ${shown(v)} (expected one of ${allowed.join(', ')})`);
  return v as T;
}

function uint(key: string, v: unknown, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > max) throw bad(key, `expected an integer from 0 to ${max}, got ${shown(v)}`);
  return v;
}

function stringList(key: string, v: unknown): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) throw bad(key, `expected a list of strings, got ${shown(v)}`);
  return v as string[];
}

function condition(key: string, v: unknown): SeccompCondition {
  if (v === undefined || v === null) return {};
  if (!isObject(v)) throw bad(key, `expected an object with caps, arches or minKernel, got ${shown(v)}`);
  const out: SeccompCondition = {};
  if (v.caps != null) out.caps = stringList(`${key}.caps`, v.caps);
  if (v.arches != null) out.arches = stringList(`${key}.arches`, v.arches);
  if (v.minKernel != null) {
    if (typeof v.minKernel !== 'string' || !/^\d+\.\d+(\.\d+)?$/.test(v.minKernel)) throw bad(`${key}.minKernel`, `expected a kernel version like "4.8", got ${shown(v.minKernel)}`);
    out.minKernel = v.minKernel;
  }
  return out;
}

/** errno values travel in the low 16 bits of SECCOMP_RET_DATA; the kernel caps them at 4095. */
const MAX_ERRNO = 4095;

/** Parse and check a profile (JSON text or an object); throws a 400 naming the key. */
export function parseSeccompProfile(input: string | unknown): SeccompProfile {
  let raw: unknown = input;
  if (typeof input === 'string') {
    try {
      raw = JSON.parse(input);
    } catch (err) {
      throw new InvalidArgumentError(`seccomp profile: not valid JSON: ${(err as Error).message}`);
    }
  }
  if (!isObject(raw)) throw bad('(top level)', `expected an object, got ${shown(raw)}`);
  const profile: SeccompProfile = {
    defaultAction: oneOf('defaultAction', raw.defaultAction, SECCOMP_ACTIONS),
    architectures: stringList('architectures', raw.architectures).map((a, i) => oneOf(`architectures[${i}]`, a, SECCOMP_ARCHES)),
    archMap: [],
    syscalls: [],
  };
  if (raw.defaultErrnoRet != null) profile.defaultErrnoRet = uint('defaultErrnoRet', raw.defaultErrnoRet, MAX_ERRNO);
  if (raw.archMap != null) {
    if (!Array.isArray(raw.archMap)) throw bad('archMap', `expected a list, got ${shown(raw.archMap)}`);
    profile.archMap = raw.archMap.map((m, i) => {
      if (!isObject(m)) throw bad(`archMap[${i}]`, `expected an object with architecture and subArchitectures, got ${shown(m)}`);
      return {
        architecture: oneOf(`archMap[${i}].architecture`, m.architecture, SECCOMP_ARCHES),
        subArchitectures: stringList(`archMap[${i}].subArchitectures`, m.subArchitectures).map((a, j) => oneOf(`archMap[${i}].subArchitectures[${j}]`, a, SECCOMP_ARCHES)),
      };
    });
  }
  // dockerd refuses the two ways of naming architectures together.
  if (profile.architectures.length && profile.archMap.length) throw bad('architectures', 'use either architectures or archMap, not both');
  if (raw.syscalls != null && !Array.isArray(raw.syscalls)) throw bad('syscalls', `expected a list, got ${shown(raw.syscalls)}`);
  for (const [i, s] of ((raw.syscalls as unknown[] | undefined) ?? []).entries()) {
    const key = `syscalls[${i}]`;
    if (!isObject(s)) throw bad(key, `expected an object, got ${shown(s)}`);
    // `name` (one syscall) is the older spelling; dockerd refuses a rule that has both.
    if (s.name != null && s.names != null) throw bad(key, 'use either name or names, not both');
    const names = s.name != null ? [typeof s.name === 'string' ? s.name : ''] : stringList(`${key}.names`, s.names);
    if (!names.length || names.some((n) => !n)) throw bad(`${key}.names`, `expected syscall names, got ${shown(s.names ?? s.name)}`);
    if (s.args != null && !Array.isArray(s.args)) throw bad(`${key}.args`, `expected a list, got ${shown(s.args)}`);
    const args = ((s.args as unknown[] | undefined) ?? []).map((a, j): SeccompArg => {
      const akey = `${key}.args[${j}]`;
      if (!isObject(a)) throw bad(akey, `expected an object with index, value, valueTwo and op, got ${shown(a)}`);
      return {
        index: uint(`${akey}.index`, a.index, 5),
        value: uint(`${akey}.value`, a.value ?? 0),
        valueTwo: uint(`${akey}.valueTwo`, a.valueTwo ?? 0),
        op: oneOf(`${akey}.op`, a.op, SECCOMP_OPERATORS),
      };
    });
    const rule: SeccompRule = {
      names,
      action: oneOf(`${key}.action`, s.action, SECCOMP_ACTIONS),
      args,
      includes: condition(`${key}.includes`, s.includes),
      excludes: condition(`${key}.excludes`, s.excludes),
    };
    if (s.errnoRet != null) rule.errnoRet = uint(`${key}.errnoRet`, s.errnoRet, MAX_ERRNO);
    profile.syscalls.push(rule);
  }
  return profile;
}

/**
 * The seccomp choice in Docker's `SecurityOpt` list: `seccomp=unconfined`, `seccomp=builtin`, or
 * `seccomp=<profile JSON>` as the docker CLI sends a profile file (the older `seccomp:` spelling
 * too). The last one wins, as in dockerd. Throws a 400 for a bad profile.
 */
export function seccompChoice(securityOpt: unknown): SeccompChoice {
  let choice: SeccompChoice = { kind: 'default' };
  for (const opt of Array.isArray(securityOpt) ? securityOpt : []) {
    if (typeof opt !== 'string' || !/^seccomp[=:]/.test(opt)) continue;
    const value = opt.slice('seccomp='.length);
    if (value === 'unconfined') choice = { kind: 'unconfined' };
    else if (value === 'builtin') choice = { kind: 'default' };
    else if (value.trimStart().startsWith('{')) choice = { kind: 'profile', profile: parseSeccompProfile(value) };
    else
      throw new InvalidArgumentError(`invalid --security-opt seccomp=${JSON.stringify(value)}: expected unconfined, builtin or a profile's JSON (the CLI reads a profile file and sends its content)`);
  }
  return choice;
}
