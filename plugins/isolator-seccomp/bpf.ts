/**
 * Compiles a Docker seccomp profile into the classic-BPF program berth's launcher installs
 * (`LaunchPlan.seccomp.bpf`: 8 bytes per `struct sock_filter`, little-endian as in memory), and into
 * the OCI `linux.seccomp` form runtime.oci hands to runc.
 *
 * Shape of the program:
 *   ld arch; one `jeq AUDIT_ARCH_*` per ABI the profile covers, else the bad-arch action
 *   per ABI: ld nr; (x86_64: nr >= 0x40000000 is the x32 ABI, its own section)
 *            nr above the profile's highest known number -> ENOSYS (runc does the same, so libc
 *            falls back from a syscall newer than the profile instead of failing on EPERM);
 *            a binary search over the numbers with rules; each leaf tries its rules in order
 *            (argument checks on the two 32-bit halves of seccomp_data.args[i]), then the default.
 */
import type { SeccompAction, SeccompArch, SeccompArg, SeccompProfile, SeccompRule } from '../../core/plugin';
import { ABI_NR_BASE, syscallTable, type Abi } from './syscalls';

// linux/bpf_common.h
const LD_W_ABS = 0x20,
  ALU_AND_K = 0x54,
  JA = 0x05,
  JEQ_K = 0x15,
  JGT_K = 0x25,
  JGE_K = 0x35,
  RET_K = 0x06;
// struct seccomp_data { int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]; }
const OFFSET_NR = 0,
  OFFSET_ARCH = 4,
  OFFSET_ARGS = 16;
// linux/seccomp.h
export const SECCOMP_RET = {
  KILL_PROCESS: 0x80000000,
  KILL_THREAD: 0,
  TRAP: 0x00030000,
  ERRNO: 0x00050000,
  TRACE: 0x7ff00000,
  LOG: 0x7ffc0000,
  ALLOW: 0x7fff0000,
} as const;
export const EPERM = 1;
export const ENOSYS = 38;
/** BPF_MAXINSNS */
const MAX_INSTRUCTIONS = 4096;
const X32_SYSCALL_BIT = 0x40000000;

/** linux/audit.h values of seccomp_data.arch; x32 shares x86_64's and sets X32_SYSCALL_BIT in nr. */
export const AUDIT_ARCH: Readonly<Record<Abi, number>> = { x86_64: 0xc000003e, x32: 0xc000003e, x86: 0x40000003, aarch64: 0xc00000b7, arm: 0x40000028 };
const ABI_OF: Partial<Record<SeccompArch, Abi>> = { SCMP_ARCH_X86_64: 'x86_64', SCMP_ARCH_X86: 'x86', SCMP_ARCH_X32: 'x32', SCMP_ARCH_AARCH64: 'aarch64', SCMP_ARCH_ARM: 'arm' };
const ARCH_OF: Readonly<Record<Abi, SeccompArch>> = { x86_64: 'SCMP_ARCH_X86_64', x86: 'SCMP_ARCH_X86', x32: 'SCMP_ARCH_X32', aarch64: 'SCMP_ARCH_AARCH64', arm: 'SCMP_ARCH_ARM' };
/** ABIs a host of each native ABI can run, so the only ones a filter there needs to know. */
const RUNNABLE: Readonly<Partial<Record<Abi, Abi[]>>> = { x86_64: ['x86_64', 'x86', 'x32'], aarch64: ['aarch64', 'arm'] };
/** 32-bit ABIs pass 32-bit arguments: libseccomp compares only the low half there. */
const ARGS_32BIT = new Set<Abi>(['x86', 'arm']);

export interface Instruction {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

/** What the profile's includes/excludes are checked against. */
export interface CompileTarget {
  /** The host's native ABI. */
  abi: 'x86_64' | 'aarch64';
  /** Capabilities the container keeps, `CAP_SYS_ADMIN` style. */
  capabilities: readonly string[];
  /** The host kernel's release (`6.18.0`). */
  kernel: string;
}

export interface CompiledFilter {
  instructions: Instruction[];
  /** `LaunchPlan.seccomp.bpf` */
  bpf: string;
  /** `LaunchPlan.seccomp.oci`: the rules that apply to this container, for runc. */
  oci: Record<string, unknown>;
}

/** The host's native ABI, or undefined where berth has no syscall table. */
export function hostAbi(nodeArch: string = process.arch): CompileTarget['abi'] | undefined {
  return nodeArch === 'x64' ? 'x86_64' : nodeArch === 'arm64' ? 'aarch64' : undefined;
}

const GOARCH: Readonly<Record<CompileTarget['abi'], string>> = { x86_64: 'amd64', aarch64: 'arm64' };

function kernelAtLeast(kernel: string, min: string): boolean {
  const have = kernel.split(/[.-]/).map(Number);
  const want = min.split('.').map(Number);
  for (let i = 0; i < want.length; i++) {
    const h = have[i] || 0;
    if (h !== want[i]) return h > want[i];
  }
  return true;
}

/** moby's reading of includes/excludes: every included cap held, no excluded one; arches are the host's Go name. */
function applies(rule: SeccompRule, target: CompileTarget): boolean {
  const arch = GOARCH[target.abi];
  const { includes: inc, excludes: exc } = rule;
  if (inc.arches?.length && !inc.arches.includes(arch)) return false;
  if (inc.caps?.some((c) => !target.capabilities.includes(c))) return false;
  if (inc.minKernel && !kernelAtLeast(target.kernel, inc.minKernel)) return false;
  if (exc.arches?.includes(arch)) return false;
  if (exc.caps?.some((c) => target.capabilities.includes(c))) return false;
  if (exc.minKernel && kernelAtLeast(target.kernel, exc.minKernel)) return false;
  return true;
}

function actionValue(action: SeccompAction, errno: number | undefined): number {
  switch (action) {
    case 'SCMP_ACT_ALLOW':
      return SECCOMP_RET.ALLOW;
    case 'SCMP_ACT_ERRNO':
      return (SECCOMP_RET.ERRNO | (errno ?? EPERM)) >>> 0;
    case 'SCMP_ACT_TRACE':
      return (SECCOMP_RET.TRACE | (errno ?? EPERM)) >>> 0;
    case 'SCMP_ACT_LOG':
      return SECCOMP_RET.LOG;
    case 'SCMP_ACT_TRAP':
      return SECCOMP_RET.TRAP;
    case 'SCMP_ACT_KILL_PROCESS':
      return SECCOMP_RET.KILL_PROCESS;
    case 'SCMP_ACT_KILL':
    case 'SCMP_ACT_KILL_THREAD':
      return SECCOMP_RET.KILL_THREAD;
  }
}

/** A syscall's rules: each matches when every comparison of one of its alternatives holds. */
interface Choice {
  alternatives: SeccompArg[][];
  action: number;
}

/** runc's reading of `args`: all must hold, unless one index appears twice, then any one of them. */
function alternatives(args: SeccompArg[]): SeccompArg[][] {
  if (!args.length) return [[]];
  const indexes = args.map((a) => a.index);
  return new Set(indexes).size < indexes.length ? args.map((a) => [a]) : [args];
}

/** Assembler with labels; a conditional jump must land within 255 instructions, `ja` anywhere. */
class Program {
  private readonly code: { code: number; k: number; jt?: Label; jf?: Label }[] = [];
  label(): Label {
    return { at: -1 };
  }
  here(l: Label): void {
    l.at = this.code.length;
  }
  ld(offset: number): void {
    this.code.push({ code: LD_W_ABS, k: offset });
  }
  and(mask: number): void {
    this.code.push({ code: ALU_AND_K, k: mask });
  }
  /** `jt`/`jf` undefined means the next instruction. */
  jump(code: number, k: number, jt?: Label, jf?: Label): void {
    this.code.push({ code, k, jt, jf });
  }
  ja(to: Label): void {
    this.code.push({ code: JA, k: 0, jt: to });
  }
  ret(value: number): void {
    this.code.push({ code: RET_K, k: value });
  }
  assemble(): Instruction[] {
    if (this.code.length > MAX_INSTRUCTIONS) {
      throw new Error(`seccomp: the profile compiles to ${this.code.length} BPF instructions, more than the kernel's ${MAX_INSTRUCTIONS}`);
    }
    return this.code.map((ins, i) => {
      const dist = (l: Label | undefined) => {
        if (!l) return 0;
        if (l.at < 0) throw new Error('seccomp: internal error, a jump to a label never placed');
        return l.at - i - 1;
      };
      if (ins.code === JA) return { code: JA, jt: 0, jf: 0, k: dist(ins.jt) };
      const jt = dist(ins.jt),
        jf = dist(ins.jf);
      if (jt > 255 || jf > 255) throw new Error('seccomp: a syscall has too many argument rules for one BPF jump (255 instructions)');
      return { code: ins.code, jt, jf, k: ins.k >>> 0 };
    });
  }
}
interface Label {
  at: number;
}

/** One comparison; falls through when it holds, jumps to `fail` when not. */
function compare(p: Program, arg: SeccompArg, halves: 1 | 2, fail: Label): void {
  const lo = OFFSET_ARGS + 8 * arg.index,
    hi = lo + 4; // little-endian u64
  const v = BigInt(arg.value),
    v2 = BigInt(arg.valueTwo);
  const high = (n: bigint) => Number((n >> 32n) & 0xffffffffn),
    low = (n: bigint) => Number(n & 0xffffffffn);
  const pass = p.label();
  switch (arg.op) {
    case 'SCMP_CMP_EQ':
    case 'SCMP_CMP_MASKED_EQ': {
      const masked = arg.op === 'SCMP_CMP_MASKED_EQ';
      const want = masked ? v2 : v;
      if (halves === 2) {
        p.ld(hi);
        if (masked) p.and(high(v));
        p.jump(JEQ_K, high(want), undefined, fail);
      }
      p.ld(lo);
      if (masked) p.and(low(v));
      p.jump(JEQ_K, low(want), undefined, fail);
      break;
    }
    case 'SCMP_CMP_NE':
      if (halves === 2) {
        p.ld(hi);
        p.jump(JEQ_K, high(v), undefined, pass);
      }
      p.ld(lo);
      p.jump(JEQ_K, low(v), fail, undefined);
      break;
    default: {
      // GT/GE directly; LT is "not GE", LE is "not GT".
      const strict = arg.op === 'SCMP_CMP_GT' || arg.op === 'SCMP_CMP_LE';
      const negate = arg.op === 'SCMP_CMP_LT' || arg.op === 'SCMP_CMP_LE';
      const yes = negate ? fail : pass,
        no = negate ? pass : fail;
      if (halves === 2) {
        const lowHalf = p.label();
        p.ld(hi);
        p.jump(JGT_K, high(v), yes, undefined);
        p.jump(JEQ_K, high(v), lowHalf, no);
        p.here(lowHalf);
      }
      p.ld(lo);
      p.jump(strict ? JGT_K : JGE_K, low(v), yes, no);
    }
  }
  p.here(pass);
}

/** The rules of one syscall in profile order: the first whose comparisons hold decides. */
function emitChoices(p: Program, choices: Choice[], abi: Abi, defaultAction: number): void {
  for (const c of choices) {
    for (const alt of c.alternatives) {
      if (!alt.length) {
        p.ret(c.action);
        return; // nothing after an unconditional rule is reachable
      }
      const next = p.label();
      for (const arg of alt) compare(p, arg, ARGS_32BIT.has(abi) ? 1 : 2, next);
      p.ret(c.action);
      p.here(next);
    }
  }
  p.ret(defaultAction);
}

const LEAF_SIZE = 4;

function emitSearch(p: Program, nrs: number[], rules: Map<number, Choice[]>, abi: Abi, defaultAction: number): void {
  if (nrs.length <= LEAF_SIZE) {
    for (const nr of nrs) {
      const next = p.label();
      p.jump(JEQ_K, nr, undefined, next);
      emitChoices(p, rules.get(nr)!, abi, defaultAction);
      p.here(next);
    }
    p.ret(defaultAction);
    return;
  }
  const mid = Math.floor(nrs.length / 2);
  const left = p.label(),
    right = p.label();
  p.jump(JGE_K, nrs[mid], undefined, left);
  p.ja(right); // the upper half may be further than a conditional jump reaches
  p.here(left);
  emitSearch(p, nrs.slice(0, mid), rules, abi, defaultAction);
  p.here(right);
  emitSearch(p, nrs.slice(mid), rules, abi, defaultAction);
}

/** The ABIs this profile's filter covers on the host: the native one always, as libseccomp does. */
function abisFor(profile: SeccompProfile, native: CompileTarget['abi']): Abi[] {
  const named = profile.architectures.length ? profile.architectures : profile.archMap.filter((m) => ABI_OF[m.architecture] === native).flatMap((m) => [m.architecture, ...m.subArchitectures]);
  const runnable = RUNNABLE[native]!;
  const out = new Set<Abi>([native]);
  for (const a of named) {
    const abi = ABI_OF[a];
    if (abi && runnable.includes(abi)) out.add(abi);
  }
  return runnable.filter((a) => out.has(a));
}

export function compileProfile(profile: SeccompProfile, target: CompileTarget): CompiledFilter {
  const rules = profile.syscalls.filter((r) => applies(r, target));
  const defaultAction = actionValue(profile.defaultAction, profile.defaultErrnoRet);
  const abis = abisFor(profile, target.abi);
  const enosys = (SECCOMP_RET.ERRNO | ENOSYS) >>> 0;
  // An ABI the profile does not cover is killed, as by libseccomp's default bad-arch action.
  const badArch = SECCOMP_RET.KILL_PROCESS;

  const p = new Program();
  const sections = new Map(abis.map((abi) => [abi, p.label()]));
  p.ld(OFFSET_ARCH);
  for (const abi of abis) {
    if (abi === 'x32') continue; // reached from the x86_64 section, by the number's x32 bit
    const other = p.label();
    p.jump(JEQ_K, AUDIT_ARCH[abi], undefined, other);
    p.ja(sections.get(abi)!);
    p.here(other);
  }
  p.ret(badArch);

  for (const abi of abis) {
    const table = syscallTable(abi);
    const base = ABI_NR_BASE[abi];
    const byNr = new Map<number, Choice[]>();
    for (const rule of rules) {
      const choice: Choice = { alternatives: alternatives(rule.args), action: actionValue(rule.action, rule.errnoRet) };
      for (const name of new Set(rule.names)) {
        const nr = table.get(name);
        if (nr === undefined) continue; // not a syscall of this ABI (dockerd skips it too)
        const list = byNr.get(base + nr) ?? [];
        // libseccomp refuses this too: the later rule could never apply, silently.
        const clash = list.find((c) => c.alternatives[0].length === 0 && c.action !== choice.action);
        if (clash) throw new Error(`seccomp profile: ${name} has a rule without args already, with another action; the second rule (${rule.action}) would never apply`);
        list.push(choice);
        byNr.set(base + nr, list);
      }
    }
    p.here(sections.get(abi)!);
    if (abi !== 'x32') p.ld(OFFSET_NR);
    if (abi === 'x86_64') {
      const native = p.label();
      p.jump(JGE_K, X32_SYSCALL_BIT, undefined, native);
      const x32 = sections.get('x32');
      if (x32) p.ja(x32);
      else p.ret(badArch);
      p.here(native);
    }
    const nrs = [...byNr.keys()].sort((a, b) => a - b);
    if (nrs.length && profile.defaultAction !== 'SCMP_ACT_ALLOW') {
      const known = p.label();
      p.jump(JGT_K, nrs[nrs.length - 1], undefined, known);
      p.ret(enosys);
      p.here(known);
    }
    emitSearch(p, nrs, byNr, abi, defaultAction);
  }

  const instructions = p.assemble();
  return { instructions, bpf: encode(instructions), oci: ociSeccomp(profile, rules, abis) };
}

/** struct sock_filter { __u16 code; __u8 jt; __u8 jf; __u32 k; } as little-endian bytes, as hex. */
export function encode(prog: Instruction[]): string {
  const buf = Buffer.alloc(prog.length * 8);
  prog.forEach((ins, i) => {
    buf.writeUInt16LE(ins.code, i * 8);
    buf.writeUInt8(ins.jt, i * 8 + 2);
    buf.writeUInt8(ins.jf, i * 8 + 3);
    buf.writeUInt32LE(ins.k >>> 0, i * 8 + 4);
  });
  return buf.toString('hex');
}

export function decode(hex: string): Instruction[] {
  const buf = Buffer.from(hex, 'hex');
  const out: Instruction[] = [];
  for (let i = 0; i + 8 <= buf.length; i += 8) {
    out.push({ code: buf.readUInt16LE(i), jt: buf.readUInt8(i + 2), jf: buf.readUInt8(i + 3), k: buf.readUInt32LE(i + 4) });
  }
  return out;
}

/** OCI LinuxSeccomp (runtime-spec config-linux.md): the rules that apply, for runc's libseccomp. */
function ociSeccomp(profile: SeccompProfile, rules: SeccompRule[], abis: Abi[]): Record<string, unknown> {
  return {
    defaultAction: profile.defaultAction,
    ...(profile.defaultErrnoRet !== undefined ? { defaultErrnoRet: profile.defaultErrnoRet } : {}),
    architectures: abis.map((a) => ARCH_OF[a]),
    syscalls: rules.map((r) => ({
      names: r.names,
      action: r.action,
      ...(r.errnoRet !== undefined ? { errnoRet: r.errnoRet } : {}),
      ...(r.args.length ? { args: r.args.map((a) => ({ index: a.index, value: a.value, valueTwo: a.valueTwo, op: a.op })) } : {}),
    })),
  };
}
