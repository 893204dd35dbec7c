/**
 * A seccomp deny-list filter as a classic-BPF program, in the form berth's launcher installs
 * (`LaunchPlan.seccomp.bpf`: 8 bytes per `struct sock_filter`, little-endian as in memory), plus
 * the same policy as an OCI `linux.seccomp` object for runtime.oci (runc builds its own BPF).
 *
 * The program, as libseccomp and Docker's profile shape it:
 *   ld  arch                  ; seccomp_data.arch
 *   jeq AUDIT_ARCH_<host>     ; a foreign ABI (i386 `int 0x80`, arm32 compat) has other numbers:
 *   ret ERRNO(ENOSYS)         ;   refuse all of it rather than let `mount` through as i386 nr 21
 *   ld  nr                    ; seccomp_data.nr
 *   jge 0x40000000 -> ENOSYS  ; x86_64 only: the x32 ABI shares the arch value but sets bit 30
 *   jeq NR -> EPERM ...       ; each denied call
 *   jeq NR -> ENOSYS ...      ; each "not implemented" call (clone3)
 *   ret ALLOW
 *   ret ERRNO(EPERM)
 *   ret ERRNO(ENOSYS)
 */
import type { Arch } from './syscalls';
import { SYSCALLS } from './syscalls';

// linux/bpf_common.h
const BPF_LD = 0x00, BPF_W = 0x00, BPF_ABS = 0x20, BPF_JMP = 0x05, BPF_JEQ = 0x10, BPF_JGE = 0x30, BPF_K = 0x00, BPF_RET = 0x06;
// linux/seccomp.h: struct seccomp_data { int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]; }
const OFFSET_NR = 0, OFFSET_ARCH = 4;
export const SECCOMP_RET_ERRNO = 0x00050000;
export const SECCOMP_RET_ALLOW = 0x7fff0000;
// linux/audit.h: EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE, EM_AARCH64 likewise.
export const AUDIT_ARCH: Readonly<Record<Arch, number>> = { x86_64: 0xc000003e, aarch64: 0xc00000b7 };
/** x86_64's __X32_SYSCALL_BIT. */
const X32_SYSCALL_BIT = 0x40000000;
const OCI_ARCH: Readonly<Record<Arch, string>> = { x86_64: 'SCMP_ARCH_X86_64', aarch64: 'SCMP_ARCH_AARCH64' };
export const EPERM = 1;
export const ENOSYS = 38; // the same on x86_64 and the generic table

export interface Instruction {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

export interface SeccompPolicy {
  /** Refused with EPERM. */
  deny: readonly string[];
  /** Refused with ENOSYS ("not implemented", so libc falls back). */
  enosys: readonly string[];
}

export interface BuiltFilter {
  instructions: Instruction[];
  /** `LaunchPlan.seccomp.bpf`. */
  bpf: string;
  /** `LaunchPlan.seccomp.oci`: OCI LinuxSeccomp. */
  oci: Record<string, unknown>;
}

/** Numbers of the named calls on `arch`, sorted and deduplicated; calls the arch lacks drop out. */
function numbers(names: readonly string[], arch: Arch): number[] {
  const out = new Set<number>();
  for (const name of names) {
    const entry = SYSCALLS[name];
    if (!entry) throw new Error(`seccomp: unknown syscall ${JSON.stringify(name)}`);
    const nr = entry[arch];
    if (nr !== undefined) out.add(nr);
  }
  return [...out].sort((a, b) => a - b);
}

export function buildFilter(policy: SeccompPolicy, arch: Arch): BuiltFilter {
  const enosysNrs = numbers(policy.enosys, arch);
  const enosysSet = new Set(enosysNrs);
  const denyNrs = numbers(policy.deny, arch).filter((nr) => !enosysSet.has(nr)); // ENOSYS wins

  const prog: Instruction[] = [];
  // Forward jumps to the three returns at the end are patched once their places are known.
  const toEnosys: { at: number; field: 'jt' | 'jf' }[] = [];
  const toEperm: number[] = [];
  const stmt = (code: number, k: number) => prog.push({ code, jt: 0, jf: 0, k });

  stmt(BPF_LD | BPF_W | BPF_ABS, OFFSET_ARCH);
  prog.push({ code: BPF_JMP | BPF_JEQ | BPF_K, jt: 0, jf: 0, k: AUDIT_ARCH[arch] });
  toEnosys.push({ at: prog.length - 1, field: 'jf' });
  stmt(BPF_LD | BPF_W | BPF_ABS, OFFSET_NR);
  if (arch === 'x86_64') {
    prog.push({ code: BPF_JMP | BPF_JGE | BPF_K, jt: 0, jf: 0, k: X32_SYSCALL_BIT });
    toEnosys.push({ at: prog.length - 1, field: 'jt' });
  }
  for (const nr of denyNrs) {
    prog.push({ code: BPF_JMP | BPF_JEQ | BPF_K, jt: 0, jf: 0, k: nr });
    toEperm.push(prog.length - 1);
  }
  for (const nr of enosysNrs) {
    prog.push({ code: BPF_JMP | BPF_JEQ | BPF_K, jt: 0, jf: 0, k: nr });
    toEnosys.push({ at: prog.length - 1, field: 'jt' });
  }
  stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  const eperm = prog.length;
  stmt(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM);
  const enosys = prog.length;
  stmt(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS);

  // Classic BPF jump offsets are u8, counted from the next instruction.
  const offset = (from: number, to: number) => {
    const d = to - from - 1;
    if (d < 0 || d > 255) throw new Error(`seccomp: filter too long for a BPF jump (${d}); deny fewer calls`);
    return d;
  };
  for (const at of toEperm) prog[at].jt = offset(at, eperm);
  for (const { at, field } of toEnosys) prog[at][field] = offset(at, enosys);

  return { instructions: prog, bpf: encode(prog), oci: ociSeccomp(policy, arch) };
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

/**
 * The OCI form (runtime-spec config-linux.md "Seccomp"): allow by default, the denied names with
 * errnoRet. runc (libseccomp) adds the architecture check itself and refuses a foreign-arch call.
 */
function ociSeccomp(policy: SeccompPolicy, arch: Arch): Record<string, unknown> {
  const enosys = [...new Set(policy.enosys)].filter((n) => SYSCALLS[n]?.[arch] !== undefined);
  const deny = [...new Set(policy.deny)].filter((n) => SYSCALLS[n]?.[arch] !== undefined && !enosys.includes(n));
  return {
    defaultAction: 'SCMP_ACT_ALLOW',
    architectures: [OCI_ARCH[arch]],
    syscalls: [
      ...(deny.length ? [{ names: deny, action: 'SCMP_ACT_ERRNO', errnoRet: EPERM }] : []),
      ...(enosys.length ? [{ names: enosys, action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS }] : []),
    ],
  };
}
