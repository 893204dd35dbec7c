/**
 * eBPF for cgroup device programs: the instruction shape, a few instruction builders, and the
 * bpf(2) calls that load a BPF_PROG_TYPE_CGROUP_DEVICE program and attach it to a cgroup2
 * directory. Behind the `Bpf` interface so tests can see what would be attached. Built on koffi
 * like core/sys/syscalls.ts, loaded lazily; the CLI never imports this module.
 */
import { closeSync, constants, openSync } from 'node:fs';
import { arch } from 'node:os';
import { errnoError, libcCalls } from './syscalls';

/** One eBPF instruction (struct bpf_insn): opcode, registers, jump offset, immediate. */
export interface BpfInsn {
  code: number;
  dst: number;
  src: number;
  off: number;
  imm: number;
}

export interface Bpf {
  /**
   * Load `insns` as a cgroup device program and attach it to `cgroupDir` (BPF_F_ALLOW_MULTI),
   * replacing the device programs attached to that directory before (the first in one step, with
   * BPF_F_REPLACE). No fd is kept: the program lives as long as the cgroup (rmdir detaches it).
   * A program the verifier refuses is an error that carries the verifier's log.
   */
  setDeviceProgram(cgroupDir: string, insns: readonly BpfInsn[]): void;
  /** Ids of the device programs attached to `cgroupDir` itself (not those inherited). */
  devicePrograms(cgroupDir: string): number[];
}

// Opcode parts (linux/bpf_common.h, linux/bpf.h).
const BPF_LDX = 0x01;
const BPF_ALU = 0x04;
const BPF_JMP = 0x05;
const BPF_W = 0x00;
const BPF_MEM = 0x60;
const BPF_K = 0x00;
const BPF_X = 0x08;
const BPF_AND = 0x50;
const BPF_RSH = 0x70;
const BPF_MOV = 0xb0;
const BPF_JNE = 0x50;
const BPF_EXIT = 0x90;

export const R0 = 0;
export const R1 = 1;
export const R2 = 2;
export const R3 = 3;
export const R4 = 4;
export const R5 = 5;

const insn = (code: number, dst: number, src: number, off: number, imm: number): BpfInsn => ({ code, dst, src, off, imm });

/** dst = *(u32 *)(src + off) */
export const loadWord = (dst: number, src: number, off: number) => insn(BPF_LDX | BPF_MEM | BPF_W, dst, src, off, 0);
/** dst = (u32)dst & imm */
export const and32Imm = (dst: number, imm: number) => insn(BPF_ALU | BPF_AND | BPF_K, dst, 0, 0, imm);
/** dst = (u32)dst >> imm */
export const rsh32Imm = (dst: number, imm: number) => insn(BPF_ALU | BPF_RSH | BPF_K, dst, 0, 0, imm);
/** dst = (u32)src */
export const mov32Reg = (dst: number, src: number) => insn(BPF_ALU | BPF_MOV | BPF_X, dst, src, 0, 0);
/** dst = (u32)imm */
export const mov32Imm = (dst: number, imm: number) => insn(BPF_ALU | BPF_MOV | BPF_K, dst, 0, 0, imm);
/** if dst != imm: skip `off` instructions */
export const jneImm = (dst: number, imm: number, off: number) => insn(BPF_JMP | BPF_JNE | BPF_K, dst, 0, off, imm);
/** if dst != src: skip `off` instructions */
export const jneReg = (dst: number, src: number, off: number) => insn(BPF_JMP | BPF_JNE | BPF_X, dst, src, off, 0);
export const exit = () => insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);

/** The program as the kernel reads it: 8 bytes per instruction, little-endian fields. */
export function encodeInsns(insns: readonly BpfInsn[]): Buffer {
  const buf = Buffer.alloc(insns.length * 8);
  insns.forEach((i, n) => {
    buf.writeUInt8(i.code, n * 8);
    buf.writeUInt8((i.src << 4) | i.dst, n * 8 + 1);
    buf.writeInt16LE(i.off, n * 8 + 2);
    buf.writeInt32LE(i.imm, n * 8 + 4);
  });
  return buf;
}

// bpf(2) commands, program and attach types, attach flags (linux/bpf.h).
const BPF_PROG_LOAD = 5;
const BPF_PROG_ATTACH = 8;
const BPF_PROG_DETACH = 9;
const BPF_PROG_GET_FD_BY_ID = 13;
const BPF_PROG_QUERY = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE = 15;
const BPF_CGROUP_DEVICE = 6;
const BPF_F_ALLOW_MULTI = 1 << 1;
const BPF_F_REPLACE = 1 << 2;
/** Big enough for every union member of bpf_attr this file uses; the kernel wants the rest zero. */
const ATTR_SIZE = 128;
const VERIFIER_LOG_SIZE = 1 << 20;

const SYS_BPF: Record<string, number> = { x64: 321, arm64: 280, riscv64: 280, ppc64: 361, s390x: 351 };

let bpfCall: ((cmd: number, attr: Buffer) => number) | undefined;

/** bpf(cmd, attr, sizeof attr); returns the result or throws with the errno's name. */
function sysBpf(cmd: number, attr: Buffer, what: string): number {
  if (!bpfCall) {
    const nr = SYS_BPF[arch()];
    if (nr === undefined) throw new Error(`bpf: no syscall number known for ${arch()}`);
    const fn = libcCalls().koffi.load('libc.so.6').func('long syscall(long nr, ...)');
    bpfCall = (command, a) => Number(fn(nr, 'int', command, 'void *', a, 'uint', a.length));
  }
  const rc = bpfCall(cmd, attr);
  if (rc < 0) throw errnoError(`bpf(${what})`, libcCalls().errno());
  return rc;
}

function loadDeviceProgram(insns: readonly BpfInsn[]): number {
  const code = encodeInsns(insns);
  const license = Buffer.from('Apache\0');
  const koffi = libcCalls().koffi;
  const attr = (log?: Buffer) => {
    const a = Buffer.alloc(ATTR_SIZE);
    a.writeUInt32LE(BPF_PROG_TYPE_CGROUP_DEVICE, 0);
    a.writeUInt32LE(insns.length, 4);
    a.writeBigUInt64LE(koffi.address(code), 8);
    a.writeBigUInt64LE(koffi.address(license), 16);
    if (log) {
      a.writeUInt32LE(1, 24); // log_level
      a.writeUInt32LE(log.length, 28);
      a.writeBigUInt64LE(koffi.address(log), 32);
    }
    a.write('berth_devices', 48); // prog_name, shown by bpftool
    a.writeUInt32LE(BPF_CGROUP_DEVICE, 68); // expected_attach_type
    return a;
  };
  try {
    return sysBpf(BPF_PROG_LOAD, attr(), 'BPF_PROG_LOAD');
  } catch (err) {
    // Load again with a log (as runc does): only a refused program pays for the verifier's text.
    const log = Buffer.alloc(VERIFIER_LOG_SIZE);
    try {
      return sysBpf(BPF_PROG_LOAD, attr(log), 'BPF_PROG_LOAD');
    } catch {
      const text = log.toString('utf8', 0, Math.max(0, log.indexOf(0))).trim();
      const e = err as NodeJS.ErrnoException;
      e.message = `${e.message}: the kernel refused the cgroup device program${text ? `; verifier log:\n${text}` : ' (no verifier log)'}`;
      throw e;
    }
  }
}

/** Run `fn` on an fd of the cgroup directory; its errors name the directory. */
function withCgroupFd<T>(cgroupDir: string, fn: (fd: number) => T): T {
  try {
    const fd = openSync(cgroupDir, constants.O_RDONLY | constants.O_DIRECTORY);
    try {
      return fn(fd);
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (!e.path) {
      e.path = cgroupDir;
      e.message = `${e.message} (cgroup ${cgroupDir})`;
    }
    throw e;
  }
}

function query(cgroupFd: number): number[] {
  for (let room = 16; ; room *= 4) {
    const ids = Buffer.alloc(room * 4);
    const a = Buffer.alloc(ATTR_SIZE);
    a.writeUInt32LE(cgroupFd, 0);
    a.writeUInt32LE(BPF_CGROUP_DEVICE, 4);
    a.writeBigUInt64LE(libcCalls().koffi.address(ids), 16);
    a.writeUInt32LE(room, 24);
    try {
      sysBpf(BPF_PROG_QUERY, a, 'BPF_PROG_QUERY');
    } catch (err) {
      // ENOSPC: more programs than room; prog_cnt now says how many.
      if ((err as NodeJS.ErrnoException).code === 'ENOSPC' && room < 1 << 16) continue;
      throw err;
    }
    return Array.from({ length: a.readUInt32LE(24) }, (_, i) => ids.readUInt32LE(i * 4));
  }
}

function progFdById(id: number): number {
  const a = Buffer.alloc(ATTR_SIZE);
  a.writeUInt32LE(id, 0);
  return sysBpf(BPF_PROG_GET_FD_BY_ID, a, 'BPF_PROG_GET_FD_BY_ID');
}

function attachOrDetach(cmd: number, cgroupFd: number, progFd: number, flags = 0, replaceFd = 0): void {
  const a = Buffer.alloc(ATTR_SIZE);
  a.writeUInt32LE(cgroupFd, 0);
  a.writeUInt32LE(progFd, 4);
  a.writeUInt32LE(BPF_CGROUP_DEVICE, 8);
  a.writeUInt32LE(flags, 12);
  a.writeUInt32LE(replaceFd, 16);
  sysBpf(cmd, a, cmd === BPF_PROG_ATTACH ? 'BPF_PROG_ATTACH' : 'BPF_PROG_DETACH');
}

function detachAll(cgroupFd: number, ids: number[]): void {
  for (const id of ids) {
    let fd: number;
    try {
      fd = progFdById(id);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // detached and freed meanwhile
      throw err;
    }
    try {
      attachOrDetach(BPF_PROG_DETACH, cgroupFd, fd);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    } finally {
      closeSync(fd);
    }
  }
}

export const bpf: Bpf = {
  setDeviceProgram(cgroupDir, insns) {
    const progFd = loadDeviceProgram(insns);
    try {
      withCgroupFd(cgroupDir, (cgroupFd) => {
        const [old, ...others] = query(cgroupFd);
        if (old === undefined) attachOrDetach(BPF_PROG_ATTACH, cgroupFd, progFd, BPF_F_ALLOW_MULTI);
        else {
          // Swap in one step, so no access is ever judged by neither program or by both.
          const oldFd = progFdById(old);
          try {
            attachOrDetach(BPF_PROG_ATTACH, cgroupFd, progFd, BPF_F_ALLOW_MULTI | BPF_F_REPLACE, oldFd);
          } finally {
            closeSync(oldFd);
          }
        }
        // Not berth's doing, but in berth's own cgroup: only the new program decides.
        detachAll(cgroupFd, others);
      });
    } finally {
      // The attachment holds the program; our fd is not needed past this call.
      closeSync(progFd);
    }
  },
  devicePrograms(cgroupDir) {
    return withCgroupFd(cgroupDir, query);
  },
};
