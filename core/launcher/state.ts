/**
 * Reading what the monitor leaves in a state dir, so a (restarted) berthd can tell a running
 * container from an exited one without having started it itself.
 *
 *   runtime.json  written once the process exec'd: pids and their /proc start times
 *   exit          written after the process exited and its output drained
 *   attach.sock   the monitor's attach socket, present while it runs
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

export const RUNTIME_FILE = 'runtime.json';
export const EXIT_FILE = 'exit';
export const ATTACH_SOCKET = 'attach.sock';
export const LOG_FILE = 'container.log';
export const PLAN_FILE = 'plan';

export interface MonitorRecord {
  pid: number;
  monitorPid: number;
  /** Field 22 of /proc/PID/stat when the process started: tells a recycled pid apart. */
  pidStartTime: number;
  monitorStartTime: number;
  startedAt: string;
}

export interface ExitRecord {
  /** The exit code, or 128 + signal number when killed by a signal (Docker's convention). */
  exitCode: number;
  /** `SIGKILL` etc. when a signal ended the process. */
  signal: string | null;
  oomKilled: boolean;
  finishedAt: string;
  /** Why the process never ran (start failure), when that is what happened. */
  error: string | null;
}

async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`${file}: ${(err as Error).message}`, { cause: err });
  }
}

export function readMonitorRecord(stateDir: string): Promise<MonitorRecord | undefined> {
  return readJson<MonitorRecord>(join(stateDir, RUNTIME_FILE));
}

export function readExitRecord(stateDir: string): Promise<ExitRecord | undefined> {
  return readJson<ExitRecord>(join(stateDir, EXIT_FILE));
}

/** Start time of a live pid from /proc (undefined when no such process, or only its zombie). */
export function processStartTime(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z' || fields[0] === 'X') return undefined; // exited, not yet reaped
    return Number(fields[19]); // field 22 overall; fields[0] is field 3
  } catch {
    return undefined;
  }
}

/** True when `pid` is alive and is the same process that was recorded (not a recycled pid). */
export function isSameProcess(pid: number, startTime: number): boolean {
  const now = processStartTime(pid);
  return now !== undefined && now === startTime;
}
