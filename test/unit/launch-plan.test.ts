/**
 * The launch plan's two ends, without root: core/launcher/plan.ts writes it, berth-launch's C
 * reader (core/launcher/launch/plan.c) parses it. `berth-launch --print-plan` prints what the
 * reader understood, so every field is checked to survive the trip, escapes included, and bad
 * plans are refused naming the line.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { LaunchPlan } from '../../core/contracts/launch';
import { capabilityMask } from '../../core/launcher/caps';
import { launcherBinary } from '../../core/launcher/binary';
import { RLIMITS, serializePlan } from '../../core/launcher/plan';

const dir = mkdtempSync(path.join(os.tmpdir(), 'launch-plan-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(text: string): { status: number | null; stdout: string; stderr: string } {
  const file = path.join(dir, 'plan');
  writeFileSync(file, text);
  return spawnSync(launcherBinary(), ['--print-plan', file], { encoding: 'utf8' });
}

function parsed(plan: LaunchPlan, stateDir = '/var/lib/berth/containers/abc'): Record<string, unknown> {
  const res = run(serializePlan(plan, { stateDir }));
  expect(res.stderr).toBe('');
  expect(res.status).toBe(0);
  return JSON.parse(res.stdout);
}

const tricky = 'tab\there, newline\nhere, back\\slash and "quotes"';

const full: LaunchPlan = {
  namespaces: ['pid', 'mount', 'uts', 'ipc', 'net', 'cgroup'],
  rootfs: '/var/lib/berth/rootfs/abc',
  readonlyRootfs: true,
  mounts: [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/data dir', type: 'bind', source: '/srv/da\tta', options: ['rbind', 'ro'] },
  ],
  devices: [{ path: '/dev/fuse', type: 'c', major: 10, minor: 229, fileMode: 0o20666, uid: 0, gid: 5 }],
  symlinks: [{ target: '/proc/self/fd', path: '/dev/fd' }],
  maskedPaths: ['/proc/kcore', '/sys/firmware'],
  readonlyPaths: ['/proc/sys'],
  hostname: 'web-1',
  loopbackUp: true,
  rlimits: [
    { type: 'nofile', soft: 1024, hard: 4096 },
    { type: 'RLIMIT_CORE', soft: Infinity, hard: -1 },
  ],
  capabilities: ['CAP_CHOWN', 'CAP_NET_BIND_SERVICE', 'CAP_KILL'],
  noNewPrivileges: true,
  seccomp: { bpf: '0600000000000000'.repeat(3) },
  oomCgroup: '/sys/fs/cgroup/memory/berth/abc',
  sessionKeyring: '_ses.abc',
  enterNamespaces: { pid: '/proc/42/ns/pid' },
  logPath: '/var/log/berth/abc.log',
  logRotation: { maxSize: 1_000_000, maxFiles: 3 },
  process: {
    args: ['sh', '-c', tricky],
    env: ['PATH=/bin', `X=${tricky}`],
    cwd: '/srv/app',
    uid: 1000,
    gid: 1001,
    additionalGids: [27, 100],
    terminal: true,
    consoleSize: { rows: 40, cols: 120 },
    openStdin: true,
    stdinOnce: true,
  },
} as LaunchPlan;

describe('launch plan: plan.ts writes, the C reader reads', () => {
  it('carries every field, escapes and all', () => {
    expect(parsed(full)).toEqual({
      stateDir: '/var/lib/berth/containers/abc',
      log: '/var/log/berth/abc.log',
      logMaxSize: 1_000_000,
      logMaxFiles: 3,
      namespaces: ['pid', 'mount', 'uts', 'ipc', 'net', 'cgroup'],
      joins: [],
      rootfs: full.rootfs,
      readonlyRootfs: true,
      mounts: [
        ['/proc', 'proc', 'proc', 'nosuid,noexec,nodev'],
        ['/data dir', 'bind', '/srv/da\tta', 'rbind,ro'],
      ],
      devices: [{ path: '/dev/fuse', type: 'c', major: 10, minor: 229, fileMode: 0o666, uid: 0, gid: 5 }],
      symlinks: [['/proc/self/fd', '/dev/fd']],
      maskedPaths: ['/proc/kcore', '/sys/firmware'],
      readonlyPaths: ['/proc/sys'],
      hostname: 'web-1',
      loopbackUp: true,
      rlimits: [
        [RLIMITS.RLIMIT_NOFILE, 1024, 4096],
        [RLIMITS.RLIMIT_CORE, -1, -1],
      ],
      caps: BigInt(`0x${capabilityMask(full.capabilities)}`).toString(16),
      noNewPrivileges: true,
      seccompInstructions: 3,
      oomCgroup: full.oomCgroup,
      sessionKeyring: '_ses.abc',
      pidNamespace: '/proc/42/ns/pid',
      uid: 1000,
      gid: 1001,
      groups: [27, 100],
      cwd: '/srv/app',
      args: ['sh', '-c', tricky],
      env: ['PATH=/bin', `X=${tricky}`],
      terminal: true,
      consoleSize: [40, 120],
      openStdin: true,
      stdinOnce: true,
    });
  });

  it('fills the defaults the C side applies: one log file, cwd /, a PATH when env is empty', () => {
    const out = parsed({
      namespaces: [],
      rootfs: '/r',
      mounts: [],
      maskedPaths: [],
      readonlyPaths: [],
      capabilities: [],
      noNewPrivileges: false,
      process: { args: ['true'], env: [], cwd: '', uid: 0, gid: 0, additionalGids: [] },
    } as unknown as LaunchPlan);
    expect(out).toMatchObject({ logMaxFiles: 1, logMaxSize: 0, cwd: '/', namespaces: [], caps: '0', hostname: null, log: null });
    expect(out.env).toEqual(['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']);
  });

  it('joins the namespaces of another process instead of making new ones', () => {
    const out = parsed({ ...full, joinNamespaces: { net: '/proc/42/ns/net', ipc: '/proc/42/ns/ipc' } });
    expect(out.joins).toEqual([
      { type: 'net', path: '/proc/42/ns/net' },
      { type: 'ipc', path: '/proc/42/ns/ipc' },
    ]);
    expect(out.namespaces).toEqual([]);
  });

  it.each([
    ['a wrong first line', 'berth-plan 2\n', /first line must be `berth-plan 1`/],
    ['an unknown key', 'berth-plan 1\nstate-dir /s\narg true\nrootfs /r\nfrobnicate yes\n', /unknown key `frobnicate` on line 5/],
    ['a bad number', 'berth-plan 1\nstate-dir /s\narg true\nrootfs /r\nuid twelve\n', /uid: not a number: twelve/],
    ['no process', 'berth-plan 1\nstate-dir /s\nrootfs /r\n', /no arg/],
    ['a relative rootfs', 'berth-plan 1\nstate-dir /s\narg true\nrootfs r\n', /rootfs missing or not absolute/],
    ['a short mount line', 'berth-plan 1\nstate-dir /s\narg true\nrootfs /r\nmount /a\tbind\n', /mount needs DEST TYPE SOURCE OPTIONS \(line 5\)/],
    ['a seccomp filter that is not whole instructions', 'berth-plan 1\nstate-dir /s\narg true\nrootfs /r\nseccomp abc\n', /not a whole number of 16-digit instructions/],
  ])('refuses %s, naming it', (_what, text, message) => {
    const res = run(text);
    expect(res.status).toBe(1);
    expect(res.stdout).toBe('');
    expect(res.stderr).toMatch(message);
  });
});
