/**
 * Small bench-local helpers: timing a command, medians, a cleanup stack, mounts and pids.
 * Nothing here imports vitest: the bench runs as plain compiled Node (dist/test/bench/run.js).
 */
import { spawn } from 'node:child_process';
import { promises as fs, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { mountsUnder, unmountUnder } from '../helpers/daemon';
import { seeded } from '../helpers/env';
import { pidAlive } from '../helpers/registry';

export { mountsUnder, pidAlive, seeded, unmountUnder };

/** The checkout root: this file runs from dist/test/bench/. */
export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
export const BERTHD_JS = path.join(REPO_ROOT, 'dist', 'core', 'daemon', 'berthd.js');
export const CLI_JS = path.join(REPO_ROOT, 'dist', 'core', 'cli', 'main.js');

export interface CmdResult {
  code: number;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to the child's exit with its output closed, in seconds. */
  seconds: number;
}

export interface CmdOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
}

/** Run a command to completion and time it (output collected, stdin closed). */
export function runCmd(cmd: string, args: string[], opts: CmdOptions = {}): Promise<CmdResult> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    const timeoutMs = opts.timeoutMs ?? 120_000;
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`${cmd}: ${err.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      if (signal === 'SIGKILL' && seconds * 1000 >= timeoutMs) stderr += `\n(killed after ${timeoutMs} ms)`;
      resolve({ code: code ?? 128, stdout, stderr, seconds });
    });
  });
}

/** Like runCmd, but a non-zero exit is an error that names the command and quotes its stderr. */
export async function mustRun(cmd: string, args: string[], opts: CmdOptions = {}): Promise<CmdResult> {
  const res = await runCmd(cmd, args, opts);
  if (res.code !== 0) {
    const why = (res.stderr.trim() || res.stdout.trim()).split('\n').slice(-4).join(' | ');
    throw new Error(`${path.basename(cmd)} ${args.join(' ')} exited ${res.code}: ${why}`);
  }
  return res;
}

/** Seconds taken by an async function. */
export async function timed<T>(fn: () => Promise<T>): Promise<{ seconds: number; value: T }> {
  const started = process.hrtime.bigint();
  const value = await fn();
  return { seconds: Number(process.hrtime.bigint() - started) / 1e9, value };
}

export function median(xs: number[]): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** True when `cmd` is an executable on PATH; returns its path. */
export function which(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (!dir) continue;
    const p = path.join(dir, cmd);
    try {
      const st = statSync(p);
      if (st.isFile() && st.mode & 0o111) return p;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

/** Resident set size of a process in MB, from /proc/PID/status VmRSS (NaN when gone). */
export function rssMB(pid: number): number {
  return statusKiB(pid, 'VmRSS') / 1024;
}

/** A field of /proc/PID/status in KiB (VmRSS, RssAnon ...); NaN once the process is gone. */
export function statusKiB(pid: number, field: string): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

/** Direct children of a process (from /proc/PID/task/TID/children). */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const text = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      if (text) out.push(...text.split(/\s+/).map(Number));
    }
  } catch {
    /* gone */
  }
  return out;
}

export function commOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** Wait until `pid` is gone (polling), up to `ms`; true if it went. */
export async function waitGone(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (pidAlive(pid)) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Everything the bench starts registers its undo here; run() undoes in reverse order, once,
 * and keeps going past failures (each is reported).
 */
export class Cleanup {
  private readonly steps: { what: string; fn: () => Promise<void> | void }[] = [];
  private ran = false;

  add(what: string, fn: () => Promise<void> | void): () => Promise<void> {
    const step = { what, fn };
    this.steps.push(step);
    // Undo one step early (and drop it from the stack), e.g. a daemon stopped between iterations.
    return async () => {
      const i = this.steps.indexOf(step);
      if (i < 0) return;
      this.steps.splice(i, 1);
      await step.fn();
    };
  }

  async run(): Promise<string[]> {
    if (this.ran) return [];
    this.ran = true;
    const problems: string[] = [];
    while (this.steps.length) {
      const step = this.steps.pop()!;
      try {
        await step.fn();
      } catch (err) {
        problems.push(`${step.what}: ${(err as Error).message}`);
      }
    }
    return problems;
  }
}

/** Unmount everything below `dir`, then remove it. */
export async function removeTree(dir: string): Promise<void> {
  unmountUnder(dir);
  await fs.rm(dir, { recursive: true, force: true });
}

/** Pids of long-lived processes the bench started (daemons, registry); checked gone at the end. */
export const trackedPids = new Set<number>();

/** Processes (other than this one) whose command line names `text`, e.g. the bench's work dir. */
export function processesMentioning(text: string): { pid: number; cmdline: string }[] {
  const out: { pid: number; cmdline: string }[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
      if (cmdline.includes(text)) out.push({ pid: Number(name), cmdline: cmdline.slice(0, 200) });
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}
