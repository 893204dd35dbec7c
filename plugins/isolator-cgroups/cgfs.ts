/**
 * The few file operations the plugin does on cgroupfs, behind an interface so unit tests can run it
 * against a fake tree in a temp dir (their `mkdir` plays the kernel and fills in control files).
 * Synchronous on purpose: each call is one small kernfs syscall, and a dozen of them per container
 * cost far less than a trip through libuv's thread pool each.
 */
import { BerthError, HTTP_STATUS } from '../../core/plugin';
import { closeSync, constants, existsSync, mkdirSync, openSync, readFileSync, rmdirSync, writeSync } from 'node:fs';

export interface CgroupFs {
  /** Make one cgroup directory; false when it already existed. */
  mkdir(dir: string): boolean;
  rmdir(dir: string): void;
  read(file: string): string;
  /** One write(2) of `value` to an existing control file (never creates one). */
  write(file: string, value: string): void;
  exists(path: string): boolean;
}

export const nodeCgroupFs: CgroupFs = {
  mkdir(dir) {
    try {
      mkdirSync(dir);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw err;
    }
  },
  rmdir(dir) {
    rmdirSync(dir);
  },
  read(file) {
    return readFileSync(file, 'utf8');
  },
  write(file, value) {
    // No O_CREAT: a missing control file is an error, as it would be on cgroupfs.
    const fd = openSync(file, constants.O_WRONLY | constants.O_TRUNC);
    try {
      writeSync(fd, value);
    } finally {
      closeSync(fd);
    }
  },
  exists(path) {
    return existsSync(path);
  },
};

/** Write with an error that names the file and the value (EINVAL alone says nothing). */
export function writeControl(fs: CgroupFs, file: string, value: string | number): void {
  try {
    fs.write(file, String(value));
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new BerthError(`cgroup: cannot write ${JSON.stringify(String(value))} to ${file}: ${e.code ?? e.message}`, HTTP_STATUS.Internal, { cause: err });
  }
}

export function readTrimmed(fs: CgroupFs, file: string): string | undefined {
  try {
    return fs.read(file).trim();
  } catch {
    return undefined;
  }
}

/** A numeric control file; `max` and missing files give undefined. */
export function readNumber(fs: CgroupFs, file: string): number | undefined {
  const v = readTrimmed(fs, file);
  if (v === undefined || v === '' || v === 'max') return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

/** `key value` lines (memory.stat, cpu.stat, cgroup.events ...) as a record of numbers. */
export function readKeyed(fs: CgroupFs, file: string): Record<string, number> {
  const out: Record<string, number> = {};
  const text = readTrimmed(fs, file);
  if (!text) return out;
  for (const line of text.split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined && Number.isFinite(Number(v))) out[k] = Number(v);
  }
  return out;
}

export function readPids(fs: CgroupFs, dir: string): number[] {
  const text = readTrimmed(fs, `${dir}/cgroup.procs`) ?? '';
  return text
    .split('\n')
    .filter(Boolean)
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 0);
}

/** One of a container's cgroup directories. */
export interface CgroupDir {
  kind: 'v1' | 'v2';
  dir: string;
  /** Controllers that act in it (v1: its hierarchy's; v2: the ones enabled; hybrid's v2 dir: none). */
  controllers: string[];
}

/** The container's directory that carries `controller`, if any. */
export function dirWith(dirs: CgroupDir[], controller: string): CgroupDir | undefined {
  return dirs.find((d) => d.controllers.includes(controller));
}
