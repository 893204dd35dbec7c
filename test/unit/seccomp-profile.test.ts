/**
 * The seccomp profile compiler (plugins/isolator-seccomp), checked by running the BPF it emits
 * through a classic-BPF interpreter over seccomp_data, against what Docker's profile says; and the
 * profile parser and security-opt checks core does at create time.
 */
import { describe, expect, it } from 'vitest';
import { checkSecurityOpt } from '../../core/api/validate';
import { parseSeccompProfile, seccompChoice, type SeccompProfile } from '../../core/seccomp/profile';
import { compileProfile, decode, DOCKER_DEFAULT_PROFILE, type CompileTarget, type Instruction } from '../../plugins/isolator-seccomp/index';
import { syscallTable, type Abi } from '../../plugins/isolator-seccomp/syscalls';
import { DEFAULT_CAPABILITIES } from '../../plugins/isolator-namespaces/defaults';

const AUDIT = { x86_64: 0xc000003e, x86: 0x40000003, aarch64: 0xc00000b7, arm: 0x40000028 };
const X32 = 0x40000000;
const ALLOW = 0x7fff0000,
  KILL_PROCESS = 0x80000000;
const ERRNO = (e: number) => (0x00050000 | e) >>> 0;
const EPERM = ERRNO(1),
  ENOSYS = ERRNO(38);

interface Call {
  nr: number;
  arch: number;
  args?: bigint[];
}

/** Classic BPF over struct seccomp_data { int nr; u32 arch; u64 ip; u64 args[6] } (little-endian). */
function runFilter(prog: Instruction[], call: Call): number {
  const word = (off: number): number => {
    if (off === 0) return call.nr >>> 0;
    if (off === 4) return call.arch >>> 0;
    const i = (off - 16) >> 3;
    if (off < 16 || i > 5) throw new Error(`load from offset ${off}`);
    const v = call.args?.[i] ?? 0n;
    return Number(off % 8 === 0 ? v & 0xffffffffn : (v >> 32n) & 0xffffffffn);
  };
  let a = 0;
  for (let pc = 0, steps = 0; pc < prog.length; pc++, steps++) {
    if (steps > prog.length) throw new Error('loop');
    const { code, jt, jf, k } = prog[pc];
    switch (code) {
      case 0x20:
        a = word(k);
        break;
      case 0x54:
        a = (a & k) >>> 0;
        break;
      case 0x05:
        pc += k;
        break;
      case 0x15:
        pc += a === k >>> 0 ? jt : jf;
        break;
      case 0x25:
        pc += a > k >>> 0 ? jt : jf;
        break;
      case 0x35:
        pc += a >= k >>> 0 ? jt : jf;
        break;
      case 0x06:
        return k >>> 0;
      default:
        throw new Error(`instruction ${pc}: opcode 0x${code.toString(16)}`);
    }
  }
  throw new Error('fell off the end of the program');
}

const target = (over: Partial<CompileTarget> = {}): CompileTarget => ({ abi: 'x86_64', capabilities: [...DEFAULT_CAPABILITIES], kernel: '6.18.0', ...over });
const nr = (abi: Abi, name: string) => {
  const n = syscallTable(abi).get(name);
  if (n === undefined) throw new Error(`${name} is not a ${abi} syscall`);
  return abi === 'x32' ? X32 + n : n;
};

describe("Docker's default profile compiled for x86_64 (no root)", () => {
  const filter = compileProfile(DOCKER_DEFAULT_PROFILE, target());
  const prog = filter.instructions;
  const x86_64 = (name: string, args?: bigint[]) => runFilter(prog, { nr: nr('x86_64', name), arch: AUDIT.x86_64, args });

  it("encodes 8 little-endian bytes per sock_filter, within the kernel's 4096, first loading the arch", () => {
    expect(decode(filter.bpf)).toEqual(prog);
    expect(filter.bpf.slice(0, 16)).toBe('2000000004000000'); // ld [4]
    expect(prog.length).toBeLessThan(4096);
    const all = compileProfile(DOCKER_DEFAULT_PROFILE, target({ capabilities: ['CAP_SYS_ADMIN', 'CAP_SYS_PTRACE', 'CAP_SYS_NICE', 'CAP_BPF', 'CAP_PERFMON', 'CAP_SYS_TIME'] }));
    expect(all.instructions.length).toBeLessThan(4096);
  });

  it('decides every x86_64 syscall number as the profile says: the allow list, EPERM for the rest, ENOSYS above the rules', () => {
    const allowed = new Set(DOCKER_DEFAULT_PROFILE.syscalls[0].names);
    const table = syscallTable('x86_64');
    const conditional = new Set(['socket', 'personality', 'clone', 'clone3', 'ptrace', 'process_vm_readv', 'process_vm_writev', 'arch_prctl', 'modify_ldt', 'chroot']);
    // As runc does: numbers above the highest one the container's rules name are newer than the
    // profile and answer ENOSYS, so libc falls back (set_mempolicy_home_node, 450, is CAP_SYS_NICE's).
    const applying = (filter.oci.syscalls as { names: string[] }[]).flatMap((r) => r.names);
    const max = Math.max(...applying.map((n) => table.get(n) ?? -1));
    expect(max).toBe(table.get('futex_waitv'));
    for (const [name, n] of table) {
      if (conditional.has(name)) continue;
      const got = runFilter(prog, { nr: n, arch: AUDIT.x86_64 });
      expect(got, name).toBe(n > max ? ENOSYS : allowed.has(name) ? ALLOW : EPERM);
    }
    expect(runFilter(prog, { nr: max + 1, arch: AUDIT.x86_64 })).toBe(ENOSYS);
    expect(runFilter(prog, { nr: 1000, arch: AUDIT.x86_64 })).toBe(ENOSYS);
  });

  it('refuses the namespace, mount, keyring, NUMA and module calls with EPERM', () => {
    for (const name of [
      'unshare',
      'setns',
      'mount',
      'umount2',
      'pivot_root',
      'open_tree',
      'fsopen',
      'keyctl',
      'add_key',
      'request_key',
      'mbind',
      'set_mempolicy',
      'bpf',
      'init_module',
      'kexec_load',
      'reboot',
      'swapon',
      'acct',
      'open_by_handle_at',
      'kcmp',
      'userfaultfd',
    ]) {
      expect(x86_64(name), name).toBe(EPERM);
    }
  });

  it('filters on arguments: clone without namespace flags, socket but vsock, personality queries', () => {
    const CLONE_NEWUSER = 0x10000000n,
      CLONE_NEWNS = 0x20000n,
      THREAD_FLAGS = 0x3d0f00n;
    expect(x86_64('clone', [THREAD_FLAGS])).toBe(ALLOW);
    expect(x86_64('clone', [0x11n])).toBe(ALLOW); // SIGCHLD: fork
    expect(x86_64('clone', [0x11n | CLONE_NEWUSER])).toBe(EPERM);
    expect(x86_64('clone', [0x11n | CLONE_NEWNS])).toBe(EPERM);
    expect(x86_64('clone', [0x11n | (1n << 40n)])).toBe(ALLOW); // only the namespace bits count
    expect(x86_64('clone3')).toBe(ENOSYS);
    expect(x86_64('socket', [2n])).toBe(ALLOW); // AF_INET
    expect(x86_64('socket', [40n])).toBe(EPERM); // AF_VSOCK
    expect(x86_64('socket', [40n | (1n << 32n)])).toBe(ALLOW); // not 40 as a 64-bit value
    for (const p of [0n, 8n, 0x20000n, 0x20008n, 0xffffffffn]) expect(x86_64('personality', [p]), `personality ${p}`).toBe(ALLOW);
    expect(x86_64('personality', [0x0040000n])).toBe(EPERM); // ADDR_NO_RANDOMIZE
  });

  it('opens calls to the capabilities that guard them, and ptrace only on kernels from 4.8', () => {
    const admin = compileProfile(DOCKER_DEFAULT_PROFILE, target({ capabilities: [...DEFAULT_CAPABILITIES, 'CAP_SYS_ADMIN'] })).instructions;
    for (const name of ['mount', 'unshare', 'setns', 'umount2', 'clone3']) expect(runFilter(admin, { nr: nr('x86_64', name), arch: AUDIT.x86_64 }), name).toBe(ALLOW);
    expect(runFilter(admin, { nr: nr('x86_64', 'clone'), arch: AUDIT.x86_64, args: [0x10000011n] })).toBe(ALLOW);
    expect(runFilter(admin, { nr: nr('x86_64', 'keyctl'), arch: AUDIT.x86_64 })).toBe(EPERM); // no capability opens keyrings
    const nice = compileProfile(DOCKER_DEFAULT_PROFILE, target({ capabilities: ['CAP_SYS_NICE'] })).instructions;
    expect(runFilter(nice, { nr: nr('x86_64', 'mbind'), arch: AUDIT.x86_64 })).toBe(ALLOW);
    expect(runFilter(nice, { nr: nr('x86_64', 'chroot'), arch: AUDIT.x86_64 })).toBe(EPERM); // without CAP_SYS_CHROOT
    expect(x86_64('chroot')).toBe(ALLOW);
    expect(x86_64('ptrace')).toBe(ALLOW);
    const old = compileProfile(DOCKER_DEFAULT_PROFILE, target({ kernel: '4.4.0-210-generic' })).instructions;
    expect(runFilter(old, { nr: nr('x86_64', 'ptrace'), arch: AUDIT.x86_64 })).toBe(EPERM);
  });

  it("covers i386 and x32 by their own numbers, as Docker's archMap asks; a foreign arch is killed", () => {
    const call = (abi: Abi, name: string, arch: number) => runFilter(prog, { nr: nr(abi, name), arch });
    expect(call('x86', 'getpid', AUDIT.x86)).toBe(ALLOW);
    expect(call('x86', 'mount', AUDIT.x86)).toBe(EPERM);
    expect(nr('x86', 'mount')).toBe(21);
    expect(call('x86', 'socketcall', AUDIT.x86)).toBe(ALLOW);
    expect(call('x86', 'keyctl', AUDIT.x86)).toBe(EPERM);
    expect(call('x86', 'arch_prctl', AUDIT.x86)).toBe(ALLOW); // the rule is for the amd64 host, and libseccomp applies it to every ABI
    expect(call('x32', 'read', AUDIT.x86_64)).toBe(ALLOW);
    expect(call('x32', 'mount', AUDIT.x86_64)).toBe(EPERM);
    expect(runFilter(prog, { nr: 0x40000000 | 1000, arch: AUDIT.x86_64 })).toBe(ENOSYS);
    expect(runFilter(prog, { nr: 40, arch: AUDIT.aarch64 })).toBe(KILL_PROCESS);
    expect(filter.oci).toMatchObject({ defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: 1, architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'] });
    // The OCI form holds only the rules that apply to this container: no CAP_SYS_ADMIN rule here.
    const rules = filter.oci.syscalls as { names: string[]; action: string; args?: unknown[] }[];
    expect(rules.some((r) => r.names.includes('mount'))).toBe(false);
    expect(rules.find((r) => r.names.includes('clone3'))).toEqual({ names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 });
  });

  it('aarch64 uses the generic table (mount is 40 there) and covers arm32 compat', () => {
    const arm = compileProfile(DOCKER_DEFAULT_PROFILE, target({ abi: 'aarch64' })).instructions;
    expect(runFilter(arm, { nr: 40, arch: AUDIT.aarch64 })).toBe(EPERM);
    expect(runFilter(arm, { nr: nr('aarch64', 'unshare'), arch: AUDIT.aarch64 })).toBe(EPERM);
    expect(runFilter(arm, { nr: nr('aarch64', 'execve'), arch: AUDIT.aarch64 })).toBe(ALLOW);
    expect(runFilter(arm, { nr: 165, arch: AUDIT.aarch64 })).toBe(ALLOW); // getrusage, mount on x86_64
    expect(runFilter(arm, { nr: nr('aarch64', 'clone3'), arch: AUDIT.aarch64 })).toBe(ENOSYS);
    expect(runFilter(arm, { nr: nr('arm', 'mount'), arch: AUDIT.arm })).toBe(EPERM);
    expect(runFilter(arm, { nr: nr('arm', 'getpid'), arch: AUDIT.arm })).toBe(ALLOW);
    expect(runFilter(arm, { nr: 165, arch: AUDIT.x86_64 })).toBe(KILL_PROCESS);
  });
});

describe("profiles of one's own (no root)", () => {
  const profile = (syscalls: unknown[], more: object = {}): SeccompProfile => parseSeccompProfile(JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', syscalls, ...more }));
  const run = (p: SeccompProfile, name: string, args?: bigint[]) => runFilter(compileProfile(p, target()).instructions, { nr: nr('x86_64', name), arch: AUDIT.x86_64, args });

  it('compares 64-bit arguments with every operator, as unsigned values', () => {
    const values = [0n, 1n, 5n, 0xffffffffn, 0x100000000n, 0x100000005n, 0x1ffffffffn, 0xfffffffffffffn];
    const ops: Record<string, (a: bigint, v: bigint) => boolean> = {
      SCMP_CMP_EQ: (a, v) => a === v,
      SCMP_CMP_NE: (a, v) => a !== v,
      SCMP_CMP_LT: (a, v) => a < v,
      SCMP_CMP_LE: (a, v) => a <= v,
      SCMP_CMP_GT: (a, v) => a > v,
      SCMP_CMP_GE: (a, v) => a >= v,
    };
    for (const [op, holds] of Object.entries(ops)) {
      for (const v of [5n, 0x100000005n]) {
        const p = profile([{ names: ['read'], action: 'SCMP_ACT_ERRNO', errnoRet: 7, args: [{ index: 2, value: Number(v), op }] }]);
        for (const a of values) expect(run(p, 'read', [0n, 0n, a]), `${op} ${a} vs ${v}`).toBe(holds(a, v) ? ERRNO(7) : ALLOW);
      }
    }
    const masked = profile([{ names: ['read'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, value: 0x100000003, valueTwo: 0x100000001, op: 'SCMP_CMP_MASKED_EQ' }] }]);
    for (const a of values) expect(run(masked, 'read', [a]), `masked ${a}`).toBe((a & 0x100000003n) === 0x100000001n ? EPERM : ALLOW);
  });

  it('reads args as runc does: different indexes all hold, one index twice means any of them', () => {
    const both = profile([
      {
        names: ['write'],
        action: 'SCMP_ACT_ERRNO',
        args: [
          { index: 0, value: 1, op: 'SCMP_CMP_EQ' },
          { index: 2, value: 3, op: 'SCMP_CMP_EQ' },
        ],
      },
    ]);
    expect(run(both, 'write', [1n, 0n, 3n])).toBe(EPERM);
    expect(run(both, 'write', [1n, 0n, 4n])).toBe(ALLOW);
    const either = profile([
      {
        names: ['write'],
        action: 'SCMP_ACT_ERRNO',
        args: [
          { index: 0, value: 1, op: 'SCMP_CMP_EQ' },
          { index: 0, value: 2, op: 'SCMP_CMP_EQ' },
        ],
      },
    ]);
    expect(run(either, 'write', [1n])).toBe(EPERM);
    expect(run(either, 'write', [2n])).toBe(EPERM);
    expect(run(either, 'write', [3n])).toBe(ALLOW);
  });

  it('maps every action, defaultErrnoRet, the old `name` spelling, and skips names the ABI lacks', () => {
    const p = profile(
      [
        { name: 'mkdir', action: 'SCMP_ACT_ERRNO' },
        { names: ['rmdir'], action: 'SCMP_ACT_KILL_PROCESS' },
        { names: ['link'], action: 'SCMP_ACT_KILL' },
        { names: ['chmod'], action: 'SCMP_ACT_TRAP' },
        { names: ['chown'], action: 'SCMP_ACT_LOG' },
        { names: ['rename'], action: 'SCMP_ACT_TRACE', errnoRet: 3 },
        { names: ['no_such_call', 'iopl'], action: 'SCMP_ACT_ERRNO' },
      ],
      { defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: 13, architectures: ['SCMP_ARCH_X86_64'] },
    );
    expect(run(p, 'mkdir')).toBe(EPERM);
    expect(run(p, 'rmdir')).toBe(KILL_PROCESS);
    expect(run(p, 'link')).toBe(0);
    expect(run(p, 'chmod')).toBe(0x00030000);
    expect(run(p, 'chown')).toBe(0x7ffc0000);
    expect(run(p, 'rename')).toBe(0x7ff00003);
    expect(run(p, 'read')).toBe(ERRNO(13));
    expect(run(p, 'iopl')).toBe(EPERM);
    // architectures names x86_64 only: an i386 call is not covered, so killed.
    expect(runFilter(compileProfile(p, target()).instructions, { nr: 20, arch: AUDIT.x86 })).toBe(KILL_PROCESS);
  });

  it('refuses a second rule that could never apply, naming the syscall', () => {
    const p = profile(
      [
        { names: ['read', 'mkdir'], action: 'SCMP_ACT_ALLOW' },
        { names: ['mkdir'], action: 'SCMP_ACT_ERRNO' },
      ],
      { defaultAction: 'SCMP_ACT_ERRNO' },
    );
    expect(() => compileProfile(p, target())).toThrow(/seccomp profile: mkdir has a rule without args already, with another action; the second rule \(SCMP_ACT_ERRNO\) would never apply/);
    const same = profile(
      [
        { names: ['mkdir'], action: 'SCMP_ACT_ALLOW' },
        { names: ['mkdir'], action: 'SCMP_ACT_ALLOW' },
      ],
      { defaultAction: 'SCMP_ACT_ERRNO' },
    );
    expect(run(same, 'mkdir')).toBe(ALLOW);
  });

  it('refuses bad profiles with a 400 naming the key', () => {
    const bad = (p: unknown) => () => parseSeccompProfile(typeof p === 'string' ? p : JSON.stringify(p));
    expect(bad('{"defaultAction": ')).toThrow(/seccomp profile: not valid JSON/);
    expect(bad([])).toThrow(/seccomp profile: \(top level\): expected an object/);
    expect(bad({})).toThrow(/defaultAction: unknown value nothing/);
    expect(bad({ defaultAction: 'SCMP_ACT_NOTIFY' })).toThrow(/defaultAction: unknown value "SCMP_ACT_NOTIFY" \(expected one of SCMP_ACT_KILL/);
    expect(bad({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['read'], action: 'ALLOW' }] })).toThrow(/syscalls\[0\]\.action: unknown value "ALLOW"/);
    expect(bad({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ action: 'SCMP_ACT_ALLOW' }] })).toThrow(/syscalls\[0\]\.names: expected syscall names/);
    expect(bad({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW', args: [{ index: 6, value: 1, op: 'SCMP_CMP_EQ' }] }] })).toThrow(
      /syscalls\[0\]\.args\[0\]\.index: expected an integer from 0 to 5, got 6/,
    );
    expect(bad({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 1, op: 'EQ' }] }] })).toThrow(/args\[0\]\.op: unknown value "EQ"/);
    expect(bad({ defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: 70000 })).toThrow(/defaultErrnoRet: expected an integer from 0 to 4095/);
    expect(bad({ defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_X86_64'], archMap: [{ architecture: 'SCMP_ARCH_X86_64' }] })).toThrow(
      /architectures: use either architectures or archMap/,
    );
    expect(bad({ defaultAction: 'SCMP_ACT_ALLOW', architectures: ['x86_64'] })).toThrow(/architectures\[0\]: unknown value "x86_64"/);
    expect(bad({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW', includes: { minKernel: 'new' } }] })).toThrow(/syscalls\[0\]\.includes\.minKernel/);
    for (const f of [bad('x'), bad({})]) expect(f).toThrow(expect.objectContaining({ status: 400 }));
  });

  it('reads the seccomp security option as dockerd does, and refuses unknown options naming them', () => {
    expect(seccompChoice(undefined)).toEqual({ kind: 'default' });
    expect(seccompChoice(['seccomp=unconfined'])).toEqual({ kind: 'unconfined' });
    expect(seccompChoice(['seccomp:unconfined', 'seccomp=builtin'])).toEqual({ kind: 'default' });
    expect(seccompChoice(['seccomp={"defaultAction":"SCMP_ACT_LOG"}'])).toMatchObject({ kind: 'profile', profile: { defaultAction: 'SCMP_ACT_LOG' } });
    expect(() => seccompChoice(['seccomp=/etc/profile.json'])).toThrow(/invalid --security-opt seccomp="\/etc\/profile.json": expected unconfined, builtin or a profile's JSON/);
    expect(() => checkSecurityOpt(['label=disable', 'apparmor=unconfined', 'seccomp=unconfined'])).not.toThrow();
    expect(() => checkSecurityOpt(['no-such-opt=1'])).toThrow(/invalid --security-opt "no-such-opt=1"/);
    expect(() => checkSecurityOpt(['seccomp'])).toThrow(/invalid --security-opt "seccomp"/);
    expect(() => checkSecurityOpt(['seccomp={"defaultAction":"X"}'])).toThrow(/seccomp profile: defaultAction: unknown value "X"/);
  });
});
