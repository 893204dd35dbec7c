/**
 * vitest globalSetup: integration tests run the compiled daemon and CLI, so make sure dist/ is
 * current. `npx tsc -p .` runs once, and only when dist/core/daemon/berthd.js is missing or older
 * than some core/ or plugins/ source. Type errors elsewhere in the tree do not stop the run (tsc
 * still emits), but a missing daemon afterwards does. The C programs are rebuilt when a .c or .h
 * is newer than the launcher.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, readdirSync, statSync, utimesSync } from 'node:fs';
import path from 'node:path';

const REPO_ROOT = path.resolve(__dirname, '..', '..');
const BERTHD_JS = path.join(REPO_ROOT, 'dist', 'core', 'daemon', 'berthd.js');
const BUILD_INFO = path.join(REPO_ROOT, 'dist', '.tsbuildinfo');

function newestSource(dir: string, pattern = /\.ts$/): number {
  let newest = 0;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestSource(p, pattern));
    else if (pattern.test(e.name)) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

function mtime(file: string): number {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

function buildCPrograms(): void {
  const launcher = path.join(REPO_ROOT, 'dist', 'launcher', 'berth-launch');
  if (mtime(launcher) >= newestSource(path.join(REPO_ROOT, 'core'), /\.[ch]$/)) return;
  const res = spawnSync('node', ['scripts/build-launcher.js'], { cwd: REPO_ROOT, encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`scripts/build-launcher.js failed:\n${res.stdout}${res.stderr}`);
}

export default function setup(): void {
  buildCPrograms();
  const built = mtime(BERTHD_JS);
  // tsc rewrites only what changed, but it always rewrites its build info when it emits anything.
  const lastBuild = built && Math.max(built, mtime(BUILD_INFO));
  const newest = Math.max(newestSource(path.join(REPO_ROOT, 'core')), newestSource(path.join(REPO_ROOT, 'plugins')));
  if (built && lastBuild >= newest) return;
  const started = Date.now();
  const res = spawnSync('npx', ['tsc', '-p', '.'], { cwd: REPO_ROOT, encoding: 'utf8' });
  if (!mtime(BERTHD_JS)) {
    throw new Error(`npx tsc -p . produced no ${BERTHD_JS}:\n${res.stdout}${res.stderr}`);
  }
  // The tests run berthd through its shebang (its node flags): a fresh emit is not executable.
  chmodSync(BERTHD_JS, 0o755);
  // A run that found nothing to emit (sources touched, not changed) still leaves dist/ current:
  // mark it, so the next run does not compile again.
  if (mtime(BUILD_INFO)) utimesSync(BUILD_INFO, new Date(started), new Date(started));
  if (res.status !== 0) {
    const errors = (res.stdout + res.stderr).split('\n').filter((l) => l.includes('error TS'));
    console.warn(`[global-setup] tsc reported ${errors.length} type error(s); dist/ was emitted anyway:\n${errors.slice(0, 10).join('\n')}`);
  }
  console.log(`[global-setup] compiled dist/ in ${Date.now() - started} ms`);
}
