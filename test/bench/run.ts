#!/usr/bin/env node
/**
 * `npm run bench`: berth measured side by side with the peers installed here (skopeo, docker,
 * podman, runc), in one run, as medians and ratios berth/peer. Prints a table; writes every raw
 * sample to a JSON file (default ./bench-results.json).
 *
 *   node dist/test/bench/run.js [--quick] [--pulls N] [--json PATH] [--only pull,run,exec,commit,storage,burst,scale]
 *
 * Needs root (real mounts and namespaces) and a built tree (`npm run build`). Everything it starts
 * lives below one temp dir and is stopped by pid; at the end it checks that no mount below that
 * dir and none of its processes is left.
 */
import crypto from 'node:crypto';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import overlayPlugin from '../../plugins/storage-overlay/index';
import type { Logger } from '../../core/contracts/types';
import { tarOf } from '../helpers/layer-fixtures';
import { startRegistry, type RunningRegistry } from '../helpers/registry';
import { apiRemove, apiRunOnce, type Berthd, CLI_COMMAND, expectStatus, startBerthd } from './berth';
import { buildAndPushImages, type BenchImages, DEFAULT_BIG, type BigImageShape, MANY_LAYERS } from './images';
import { hostResidueBefore, removeHostResidue } from './residue';
import {
  BERTHD_JS,
  CLI_JS,
  Cleanup,
  commOf,
  processesMentioning,
  trackedPids,
  type CmdResult,
  median,
  mountsUnder,
  mustRun,
  pidAlive,
  removeTree,
  rssMB,
  runCmd,
  statusKiB,
  sleep,
  timed,
  which,
} from './lib';
import { dockerMissing, type Dockerd, podmanInstance, podmanMissing, runcBundle, startDockerd } from './peers';

// ---- results -------------------------------------------------------------------------------------

type Unit = 's' | 'ms' | 'MB' | 'KiB' | 'count';

interface Measure {
  id: string;
  section: string;
  what: string;
  tool: string;
  unit: Unit;
  samples: number[];
  median: number;
  note?: string;
  /** For bursts: [exited 0, started]. */
  succeeded?: [number, number];
}

interface Comparison {
  seq?: number;
  section: string;
  what: string;
  berth: string;
  peer: string;
  /** berth/peer must be <= target. */
  target?: number;
}

interface AbsoluteTarget {
  seq?: number;
  section: string;
  what: string;
  measure: string;
  /** median must be <= max (in the measure's unit). */
  max: number;
}

interface Skip {
  section: string;
  tool: string;
  reason: string;
}

const measures = new Map<string, Measure>();
const comparisons: Comparison[] = [];
const absoluteTargets: AbsoluteTarget[] = [];
/** Comparisons and absolute targets share one sequence, so the table keeps the sections' order. */
let seq = 0;
function compare(c: Comparison): void {
  comparisons.push({ ...c, seq: seq++ });
}
function absolute(t: AbsoluteTarget): void {
  absoluteTargets.push({ ...t, seq: seq++ });
}
const skips: Skip[] = [];

function record(id: string, section: string, what: string, tool: string, unit: Unit, samples: number[], note?: string, succeeded?: [number, number]): Measure {
  const m: Measure = { id, section, what, tool, unit, samples, median: median(samples), note, succeeded };
  measures.set(id, m);
  return m;
}

function skip(section: string, tool: string, reason: string): void {
  const one = reason.replace(/\s+/g, ' ').slice(0, 400);
  skips.push({ section, tool, reason: one });
  log(`  skipped ${tool} in ${section}: ${one}`);
}

function log(line: string): void {
  process.stderr.write(line + '\n');
}

/** Run `fn`, and turn a failure into a printed skip instead of ending the bench. */
async function attempt(section: string, tool: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    skip(section, tool, (err as Error).message);
  }
}

function ok(res: CmdResult, what: string): CmdResult {
  if (res.code !== 0) throw new Error(`${what} exited ${res.code}: ${(res.stderr.trim() || res.stdout.trim()).split('\n').slice(-3).join(' | ')}`);
  return res;
}

// ---- context -------------------------------------------------------------------------------------

interface Ctx {
  base: string;
  quick: boolean;
  images: BenchImages;
  registry: RunningRegistry;
  cleanup: Cleanup;
  docker?: Dockerd;
  /** Why docker is not measured, when it is not. */
  dockerWhy?: string;
  podmanWhy?: string;
  runcWhy?: string;
  skopeoWhy?: string;
  /** The long-lived overlay berthd used by run, exec, storage and burst. */
  berth?: Berthd;
  versions: Record<string, string>;
  n: { pull: number; run: number; exec: number; commit: number; create: number; vfs: number; burst: number };
}

let dirCounter = 0;
function dirFor(ctx: Ctx, name: string): string {
  return path.join(ctx.base, `${name}-${++dirCounter}`);
}

// ---- 1. pull -------------------------------------------------------------------------------------

/** One image the pull section pulls cold with every tool, with berth's targets against the peers. */
interface PullCase {
  key: string;
  ref: string;
  what: string;
  targets: { docker?: number; podman?: number };
}

async function benchPull(ctx: Ctx): Promise<void> {
  const size = `${Math.round(ctx.images.bigDataBytes / 1e6)} MB`;
  const files = ctx.images.filesShape;
  const cases: PullCase[] = [
    { key: 'pull', ref: ctx.images.big, what: `cold pull, 5 layers (${size} random + busybox)`, targets: { docker: 0.7, podman: 0.6 } },
    {
      key: 'pullfiles',
      ref: ctx.images.files,
      what: `cold pull, many-file image (${files.layers.length + 1} layers: busybox, ${files.entries} host entries, ${Math.round(files.bytes / 1e6)} MB)`,
      targets: { docker: 0.8, podman: 0.8 },
    },
    // No ratio target: the issue asks for no quadratic step; docker and podman show what linear costs.
    { key: 'pull100', ref: ctx.images.layers, what: `cold pull, ${MANY_LAYERS} layers (busybox + ${MANY_LAYERS - 1} of one small file)`, targets: {} },
  ];
  for (const c of cases) await pullCase(ctx, c);
}

async function pullCase(ctx: Ctx, c: PullCase): Promise<void> {
  const S = 'pull';
  log(`[pull] ${ctx.n.pull} cold pull(s) of ${c.ref} per tool`);
  const samples: Record<string, number[]> = { berth: [], skopeo: [], umoci: [], docker: [], podman: [] };
  const failed = new Set<string>();
  const once = async (tool: string, fn: () => Promise<number>) => {
    if (failed.has(tool)) return;
    try {
      samples[tool].push(await fn());
    } catch (err) {
      failed.add(tool);
      skip(S, tool, (err as Error).message);
    }
  };
  const haveUmoci = !ctx.skopeoWhy && !!which('umoci');
  // Iterations are interleaved across tools, so background load hits them all alike.
  for (let i = 0; i < ctx.n.pull; i++) {
    await once('berth', async () => {
      const d = await startBerthd(dirFor(ctx, 'pull-berth'));
      try {
        return ok(await d.cli(['pull', c.ref], 300_000), 'berth pull').seconds;
      } finally {
        await d.stop();
      }
    });
    if (!ctx.skopeoWhy) {
      await once('skopeo', async () => {
        const dest = dirFor(ctx, 'pull-skopeo');
        try {
          return ok(await skopeoCopy(c.ref, dest), 'skopeo copy').seconds;
        } finally {
          await removeTree(dest);
        }
      });
    }
    if (haveUmoci) {
      // Download, then unpack into a rootfs: what berth does, by two Go tools one after the other.
      await once('umoci', async () => {
        const dest = dirFor(ctx, 'pull-umoci');
        await fs.mkdir(dest, { recursive: true });
        try {
          const copied = ok(await skopeoCopy(c.ref, path.join(dest, 'layout')), 'skopeo copy');
          const unpacked = ok(await runCmd('umoci', ['unpack', '--image', `${path.join(dest, 'layout')}:latest`, path.join(dest, 'bundle')], { timeoutMs: 300_000 }), 'umoci unpack');
          return copied.seconds + unpacked.seconds;
        } finally {
          await removeTree(dest);
        }
      });
    }
    if (ctx.docker) {
      const docker = ctx.docker;
      await once('docker', async () => {
        try {
          return ok(await docker.cli(['pull', '-q', c.ref], 300_000), 'docker pull').seconds;
        } finally {
          await docker.cli(['rmi', '-f', c.ref]);
        }
      });
    }
    if (!ctx.podmanWhy) {
      await once('podman', async () => {
        const p = await podmanInstance(dirFor(ctx, 'pull-podman'));
        try {
          return ok(await p.run(['pull', '-q', '--tls-verify=false', c.ref], 300_000), 'podman pull').seconds;
        } finally {
          await p.stop();
        }
      });
    }
  }
  const tools: [string, string][] = [
    ['berth', 'berth pull (fresh root)'],
    ['skopeo', 'skopeo copy -> oci: (download only, floor)'],
    ['umoci', 'skopeo copy + umoci unpack (download, then unpack)'],
    ['docker', 'docker pull (private dockerd, after rmi)'],
    ['podman', 'podman pull (fresh root)'],
  ];
  for (const [tool, label] of tools) if (samples[tool].length && !failed.has(tool)) record(`${c.key}.${tool}`, S, c.what, label, 's', samples[tool]);
  compare({ section: S, what: c.what, berth: `${c.key}.berth`, peer: `${c.key}.skopeo` });
  if (haveUmoci) compare({ section: S, what: c.what, berth: `${c.key}.berth`, peer: `${c.key}.umoci` });
  compare({ section: S, what: c.what, berth: `${c.key}.berth`, peer: `${c.key}.docker`, target: c.targets.docker });
  compare({ section: S, what: c.what, berth: `${c.key}.berth`, peer: `${c.key}.podman`, target: c.targets.podman });
  if (ctx.skopeoWhy) skip(S, 'skopeo', ctx.skopeoWhy);
  if (ctx.dockerWhy) skip(S, 'docker', ctx.dockerWhy);
  if (ctx.podmanWhy) skip(S, 'podman', ctx.podmanWhy);
}

/** `skopeo copy` of a bench image from the loopback registry into an OCI layout at `dest` (tag latest). */
function skopeoCopy(ref: string, dest: string): Promise<CmdResult> {
  return runCmd('skopeo', ['--insecure-policy', 'copy', '--quiet', '--src-tls-verify=false', '--src-no-creds', `docker://${ref}`, `oci:${dest}:latest`], { timeoutMs: 300_000 });
}

// ---- shared: the long-lived berthd and peer images -------------------------------------------------

async function berthMain(ctx: Ctx): Promise<Berthd> {
  if (ctx.berth) return ctx.berth;
  const d = await startBerthd(dirFor(ctx, 'berth'));
  ctx.cleanup.add('stop berthd (main)', () => d.stop());
  ok(await d.cli(['pull', '-q', ctx.images.busybox], 120_000), 'berth pull busybox');
  ctx.berth = d;
  return d;
}

let podmanShared: Awaited<ReturnType<typeof podmanInstance>> | undefined;
async function podmanMain(ctx: Ctx) {
  if (podmanShared) return podmanShared;
  const p = await podmanInstance(dirFor(ctx, 'podman'));
  ctx.cleanup.add('remove podman root', () => p.stop());
  ok(await p.run(['pull', '-q', '--tls-verify=false', ctx.images.busybox], 120_000), 'podman pull busybox');
  podmanShared = p;
  return p;
}

let dockerHasBusybox = false;
async function dockerMain(ctx: Ctx): Promise<Dockerd> {
  const docker = ctx.docker!;
  if (!dockerHasBusybox) ok(await docker.cli(['pull', '-q', ctx.images.busybox], 120_000), 'docker pull busybox');
  dockerHasBusybox = true;
  return docker;
}

/** Time `fn` n times after `warmup` untimed calls; each call returns seconds. */
async function repeat(n: number, warmup: number, fn: () => Promise<number>): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn();
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(await fn());
  return out;
}

/** One tool in an interleaved contest: prepared once, timed `n` times, torn down once. */
interface Contender {
  tool: string;
  id: string;
  label: string;
  unit: Unit;
  /** Why it cannot take part (printed as a skip), if it cannot. */
  missing?: string;
  prepare?: () => Promise<void>;
  /** One timed call; returns the figure in `unit`. */
  once: () => Promise<number>;
  teardown?: () => Promise<void>;
}

/**
 * Time every contender `n` times, interleaved (A B C, A B C ...), after `warmup` untimed rounds,
 * so background load on the machine hits them all alike. A contender that fails is dropped
 * with a printed reason; the others go on.
 */
async function contest(section: string, what: string, n: number, warmup: number, contenders: Contender[]): Promise<void> {
  const live: Contender[] = [];
  const samples = new Map<Contender, number[]>();
  const drop = (c: Contender, err: unknown) => {
    live.splice(live.indexOf(c), 1);
    skip(section, c.tool, (err as Error).message);
  };
  for (const c of contenders) {
    if (c.missing) {
      skip(section, c.tool, c.missing);
      continue;
    }
    try {
      await c.prepare?.();
      live.push(c);
      samples.set(c, []);
    } catch (err) {
      skip(section, c.tool, (err as Error).message);
    }
  }
  for (let round = 0; round < warmup + n; round++) {
    for (const c of [...live]) {
      try {
        const v = await c.once();
        if (round >= warmup) samples.get(c)!.push(v);
      } catch (err) {
        drop(c, err);
      }
    }
  }
  for (const c of contenders) {
    if (live.includes(c)) record(c.id, section, what, c.label, c.unit, samples.get(c)!);
    if (samples.has(c)) await c.teardown?.().catch((err) => log(`  ${c.tool}: teardown failed: ${(err as Error).message}`));
  }
}

// ---- 2. run --------------------------------------------------------------------------------------

async function benchRun(ctx: Ctx): Promise<void> {
  const S = 'run';
  const what = '`run --rm IMG true`, CLI wall time';
  const img = ctx.images.busybox;
  log(`[run] ${ctx.n.run} x run --rm ${img} true per tool`);
  let berth: Berthd | undefined;
  let podman: Awaited<ReturnType<typeof podmanInstance>> | undefined;
  let docker: Dockerd | undefined;
  let bundle: Awaited<ReturnType<typeof runcBundle>> | undefined;
  let runcCount = 0;
  let dockerViaBerth: ((args: string[]) => ReturnType<typeof runCmd>) | undefined;
  await contest(S, what, ctx.n.run, 2, [
    {
      tool: 'berth',
      id: 'run.berth',
      label: 'berth run --rm',
      unit: 's',
      prepare: async () => void (berth = await berthMain(ctx)),
      once: async () => ok(await berth!.cli(['run', '--rm', '--network', 'none', img, 'true']), 'berth run').seconds,
    },
    {
      tool: 'berth',
      id: 'run.berth-bridge',
      label: 'berth run --rm, default bridge network',
      unit: 's',
      prepare: async () => void (berth = await berthMain(ctx)),
      once: async () => ok(await berth!.cli(['run', '--rm', img, 'true']), 'berth run (bridge)').seconds,
    },
    {
      tool: 'podman',
      id: 'run.podman',
      label: 'podman --runtime runc run --rm',
      unit: 's',
      missing: ctx.podmanWhy,
      prepare: async () => void (podman = await podmanMain(ctx)),
      once: async () => ok(await podman!.run(['run', '--rm', '--network', 'none', img, 'true']), 'podman run').seconds,
    },
    {
      tool: 'docker',
      id: 'run.docker',
      label: 'docker run --rm',
      unit: 's',
      missing: ctx.dockerWhy,
      prepare: async () => void (docker = await dockerMain(ctx)),
      once: async () => ok(await docker!.cli(['run', '--rm', '--network', 'none', img, 'true']), 'docker run').seconds,
    },
    {
      // The docker CLI itself, pointed at berthd: what a Docker user switching to berth gets.
      tool: 'docker',
      id: 'run.dockercli-berth',
      label: 'docker run --rm, through berthd',
      unit: 's',
      missing: ctx.dockerWhy,
      prepare: async () => {
        berth = await berthMain(ctx);
        const dir = dirFor(ctx, 'docker-cli-config');
        await fs.mkdir(dir, { recursive: true });
        dockerViaBerth = (args) => runCmd('docker', args, { env: { ...process.env, DOCKER_HOST: `unix://${berth!.socket}`, DOCKER_CONFIG: dir, DOCKER_CLI_HINTS: 'false' } });
      },
      once: async () => ok(await dockerViaBerth!(['run', '--rm', '--network', 'none', img, 'true']), 'docker run through berthd').seconds,
    },
    {
      tool: 'runc',
      id: 'run.runc',
      label: 'runc run (ready bundle, floor)',
      unit: 's',
      missing: ctx.runcWhy,
      prepare: async () => {
        const dir = dirFor(ctx, 'runc');
        ctx.cleanup.add('remove runc bundle', () => removeTree(dir));
        bundle = await runcBundle(dir, `${ctx.images.layoutDir}:busybox`);
      },
      once: async () => ok(await bundle!.run(`bench-${process.pid}-${runcCount++}`), 'runc run').seconds,
    },
  ]);
  compare({ section: S, what, berth: 'run.berth', peer: 'run.podman', target: 0.5 });
  compare({ section: S, what, berth: 'run.berth', peer: 'run.docker', target: 0.35 });
  compare({ section: S, what, berth: 'run.berth', peer: 'run.runc' });
  compare({ section: S, what, berth: 'run.dockercli-berth', peer: 'run.docker', target: 0.25 });
  const [none, bridged] = [measures.get('run.berth'), measures.get('run.berth-bridge')];
  if (none && bridged) {
    const whatBridge = 'what the default bridge adds to `berth run --rm IMG true` (medians)';
    record('run.bridge-added', S, whatBridge, 'berth', 'ms', [(bridged.median - none.median) * 1000]);
    absolute({ section: S, what: whatBridge, measure: 'run.bridge-added', max: 15 });
  }

  // Daemon side: create + start + wait over the API socket, no CLI start-up in it.
  const whatApi = 'API create+start+wait of `true` (daemon side)';
  const apiOnce = async (api: Berthd['api'], prefix: string) => {
    const { seconds, value } = await timed(() => apiRunOnce(api, img, ['true'], prefix));
    await apiRemove(api, value.id, prefix);
    if (value.exitCode !== 0) throw new Error(`container exited ${value.exitCode}`);
    return seconds * 1000;
  };
  await contest(S, whatApi, ctx.n.run, 2, [
    { tool: 'berth', id: 'runapi.berth', label: 'berthd API', unit: 'ms', prepare: async () => void (berth = await berthMain(ctx)), once: () => apiOnce(berth!.api, '') },
    {
      tool: 'docker',
      id: 'runapi.docker',
      label: 'dockerd API v1.41',
      unit: 'ms',
      missing: ctx.dockerWhy,
      prepare: async () => void (docker = await dockerMain(ctx)),
      once: () => apiOnce(docker!.api, '/v1.41'),
    },
  ]);
  compare({ section: S, what: whatApi, berth: 'runapi.berth', peer: 'runapi.docker' });
  absolute({ section: S, what: whatApi, measure: 'runapi.berth', max: 30 });

  // Idle RSS: a second of quiet after the runs, then VmRSS.
  await sleep(1000);
  const whatRss = 'daemon idle RSS (VmRSS)';
  if (ctx.berth) record('rss.berth', S, whatRss, 'berthd', 'MB', [rssMB(ctx.berth.pid)]);
  if (ctx.docker) {
    const r = ctx.docker.idleRss();
    record('rss.docker', S, whatRss, 'dockerd + containerd', 'MB', [r.dockerd + r.containerd], `dockerd ${r.dockerd.toFixed(1)} MB + containerd ${r.containerd.toFixed(1)} MB`);
  }
  compare({ section: S, what: whatRss, berth: 'rss.berth', peer: 'rss.docker' });
}

// ---- 3. exec -------------------------------------------------------------------------------------

async function benchExec(ctx: Ctx): Promise<void> {
  const S = 'exec';
  const what = '`exec C true` in a running container, CLI wall time';
  const img = ctx.images.busybox;
  log(`[exec] ${ctx.n.exec} x exec C true per tool`);
  let berth: Berthd | undefined;
  let podman: Awaited<ReturnType<typeof podmanInstance>> | undefined;
  let docker: Dockerd | undefined;
  const ids: Record<string, string> = {};
  await contest(S, what, ctx.n.exec, 2, [
    {
      tool: 'berth',
      id: 'exec.berth',
      label: 'berth exec',
      unit: 's',
      prepare: async () => {
        berth = await berthMain(ctx);
        ids.berth = ok(await berth.cli(['run', '-d', '--network', 'none', img, 'sleep', '3600']), 'berth run -d').stdout.trim();
      },
      once: async () => ok(await berth!.cli(['exec', ids.berth, 'true']), 'berth exec').seconds,
      teardown: async () => void ok(await berth!.cli(['rm', '-f', ids.berth]), 'berth rm -f'),
    },
    {
      tool: 'podman',
      id: 'exec.podman',
      label: 'podman exec',
      unit: 's',
      missing: ctx.podmanWhy,
      prepare: async () => {
        podman = await podmanMain(ctx);
        ids.podman = ok(await podman.run(['run', '-d', '--network', 'none', img, 'sleep', '3600']), 'podman run -d').stdout.trim();
      },
      once: async () => ok(await podman!.run(['exec', ids.podman, 'true']), 'podman exec').seconds,
      teardown: async () => void ok(await podman!.run(['rm', '-f', '-t', '0', ids.podman]), 'podman rm -f'),
    },
    {
      tool: 'docker',
      id: 'exec.docker',
      label: 'docker exec',
      unit: 's',
      missing: ctx.dockerWhy,
      prepare: async () => {
        docker = await dockerMain(ctx);
        ids.docker = ok(await docker.cli(['run', '-d', '--network', 'none', img, 'sleep', '3600']), 'docker run -d').stdout.trim();
      },
      once: async () => ok(await docker!.cli(['exec', ids.docker, 'true']), 'docker exec').seconds,
      teardown: async () => void ok(await docker!.cli(['rm', '-f', ids.docker]), 'docker rm -f'),
    },
  ]);
  compare({ section: S, what, berth: 'exec.berth', peer: 'exec.podman', target: 0.5 });
  compare({ section: S, what, berth: 'exec.berth', peer: 'exec.docker' });
}

// ---- 3b. commit -----------------------------------------------------------------------------------

/** `commit` of a stopped container that wrote 20 MB of incompressible data (a new layer). */
async function benchCommit(ctx: Ctx): Promise<void> {
  const S = 'commit';
  const what = '`commit C` of a container with 20 MB of changes, CLI wall time';
  const img = ctx.images.busybox;
  const write = ['sh', '-c', 'head -c 20971520 /dev/urandom > /blob'];
  log(`[commit] ${ctx.n.commit} x commit per tool`);
  let berth: Berthd | undefined;
  let podman: Awaited<ReturnType<typeof podmanInstance>> | undefined;
  let docker: Dockerd | undefined;
  const ids: Record<string, string> = {};
  // The image each commit made is removed after it is timed, so every commit writes a new layer.
  const timedCommit = async (cli: (a: string[]) => Promise<{ seconds: number; stdout: string; code: number; stderr: string }>, tool: string, id: string) => {
    const r = ok(await cli(['commit', id]), `${tool} commit`);
    ok(await cli(['rmi', r.stdout.trim()]), `${tool} rmi`);
    return r.seconds;
  };
  await contest(S, what, ctx.n.commit, 1, [
    {
      tool: 'berth',
      id: 'commit.berth',
      label: 'berth commit',
      unit: 's',
      prepare: async () => {
        berth = await berthMain(ctx);
        ids.berth = ok(await berth.cli(['create', '--network', 'none', img, ...write]), 'berth create').stdout.trim();
        ok(await berth.cli(['start', '-a', ids.berth]), 'berth start -a');
      },
      once: () => timedCommit((a) => berth!.cli(a), 'berth', ids.berth),
      teardown: async () => void ok(await berth!.cli(['rm', '-f', ids.berth]), 'berth rm -f'),
    },
    {
      tool: 'podman',
      id: 'commit.podman',
      label: 'podman commit',
      unit: 's',
      missing: ctx.podmanWhy,
      prepare: async () => {
        podman = await podmanMain(ctx);
        ids.podman = ok(await podman.run(['create', '--network', 'none', img, ...write]), 'podman create').stdout.trim();
        ok(await podman.run(['start', '-a', ids.podman]), 'podman start -a');
      },
      once: () => timedCommit((a) => podman!.run(a), 'podman', ids.podman),
      teardown: async () => void ok(await podman!.run(['rm', '-f', ids.podman]), 'podman rm -f'),
    },
    {
      tool: 'docker',
      id: 'commit.docker',
      label: 'docker commit',
      unit: 's',
      missing: ctx.dockerWhy,
      prepare: async () => {
        docker = await dockerMain(ctx);
        ids.docker = ok(await docker.cli(['create', '--network', 'none', img, ...write]), 'docker create').stdout.trim();
        ok(await docker.cli(['start', '-a', ids.docker]), 'docker start -a');
      },
      once: () => timedCommit((a) => docker!.cli(a), 'docker', ids.docker),
      teardown: async () => void ok(await docker!.cli(['rm', '-f', ids.docker]), 'docker rm -f'),
    },
  ]);
  compare({ section: S, what, berth: 'commit.berth', peer: 'commit.podman', target: 0.7 });
  compare({ section: S, what, berth: 'commit.berth', peer: 'commit.docker' });
}

// ---- 4. storage ----------------------------------------------------------------------------------

/** The top layer of a vfs root: the one no other layer names as its parent. */
async function vfsTopLayerTree(root: string): Promise<string> {
  const layers = path.join(root, 'plugins', 'storage.vfs', 'layers');
  const names = (await fs.readdir(layers)).filter((n) => /^[0-9a-f]{64}$/.test(n));
  const parents = new Set<string>();
  for (const n of names) {
    const p = (await fs.readFile(path.join(layers, n, 'parent'), 'utf8').catch(() => '')).trim();
    if (p) parents.add(p.replace(/^sha256:/, ''));
  }
  const tops = names.filter((n) => !parents.has(n));
  if (tops.length !== 1) throw new Error(`expected one top layer under ${layers}, found ${tops.length}`);
  return path.join(layers, tops[0], 'root');
}

async function benchStorage(ctx: Ctx): Promise<void> {
  const S = 'storage';
  log(`[storage] overlay create x${ctx.n.create}; vfs create of the big image x${ctx.n.vfs} vs cp -a`);
  // overlay: POST /containers/create, which makes the container's layer (the mount is at start).
  const whatOverlay = 'overlay: POST /containers/create (5-layer image), daemon side';
  await attempt(S, 'berth', async () => {
    const d = await berthMain(ctx);
    ok(await d.cli(['pull', '-q', ctx.images.big], 300_000), 'berth pull big');
    const samples = await repeat(ctx.n.create, 3, async () => {
      const { seconds, value } = await timed(() => d.api('/containers/create', { method: 'POST', body: { Image: ctx.images.big, Cmd: ['true'] } }));
      expectStatus(value, 'create', 201);
      await apiRemove(d.api, value.json.Id);
      return seconds * 1000;
    });
    record('create.overlay.api', S, whatOverlay, 'berthd API', 'ms', samples);
    absolute({ section: S, what: whatOverlay, measure: 'create.overlay.api', max: 10 });
    // The rootfs itself: the storage driver's create + mount, in process on a root of its own.
    await overlayDriverTiming(ctx, d);
  });

  // vfs: create copies the image's top layer; compare with cp -a of that same tree.
  const whatVfs = `vfs: container create of the big image vs cp -a of its tree`;
  await attempt(S, 'berth', async () => {
    const dir = dirFor(ctx, 'berth-vfs');
    const d = await startBerthd(dir, { storageDriver: 'vfs' });
    const stop = ctx.cleanup.add('stop berthd (vfs)', () => d.stop());
    try {
      const pulled = ok(await d.cli(['pull', '-q', ctx.images.big], 600_000), 'berth pull big (vfs)');
      record('pull.vfs.berth', S, 'pull of the big image onto vfs (info)', 'berth pull --storage-driver vfs', 's', [pulled.seconds]);
      const tree = await vfsTopLayerTree(d.root);
      const bytes = Number((await mustRun('du', ['-sb', tree])).stdout.split(/\s/)[0]);
      const files = Number((await mustRun('sh', ['-c', `find "${tree}" | wc -l`])).stdout.trim());
      const note = `tree of ${(bytes / 1e6).toFixed(0)} MB, ${files} entries`;
      const samples: number[] = [];
      const cpSamples: number[] = [];
      for (let i = 0; i < ctx.n.vfs; i++) {
        await mustRun('sync', []);
        const { seconds, value } = await timed(() => d.api('/containers/create', { method: 'POST', body: { Image: ctx.images.big, Cmd: ['true'] } }));
        expectStatus(value, 'create (vfs)', 201);
        samples.push(seconds);
        await apiRemove(d.api, value.json.Id);
        await mustRun('sync', []);
        const dest = dirFor(ctx, 'cp');
        try {
          cpSamples.push(ok(await runCmd('cp', ['-a', tree, dest], { timeoutMs: 300_000 }), 'cp -a').seconds);
        } finally {
          await removeTree(dest);
        }
      }
      record('create.vfs.berth', S, whatVfs, 'berthd API create (vfs)', 's', samples, note);
      record('create.vfs.cp', S, whatVfs, 'cp -a of the same tree', 's', cpSamples, note);
      compare({ section: S, what: whatVfs, berth: 'create.vfs.berth', peer: 'create.vfs.cp', target: 1.0 });
    } finally {
      await stop();
    }
  });
}

/** Time the overlay driver's create + mount (rootfs ready) in this process, on a throwaway root. */
async function overlayDriverTiming(ctx: Ctx, d: Berthd): Promise<void> {
  const S = 'storage';
  const what = 'overlay: driver create + mount = rootfs ready (in process)';
  await attempt(S, 'berth', async () => {
    // The plugin as berthd loads it; a container id the daemon does not know, removed at once.
    const manifest = overlayPlugin;
    const stateDir = path.join(d.root, 'plugins', 'storage.overlay');
    const noop = () => undefined;
    const logger: Logger = { debug: noop, info: noop, warn: noop, error: noop, child: () => logger };
    const driver = await manifest.init({
      uri: 'storage.overlay',
      config: manifest.parseConfig!({}),
      root: d.root,
      stateDir,
      container: undefined as never,
      log: logger,
      getSingle: () => undefined,
      getAll: () => [],
    });
    const images = expectStatus(await d.api('/images/json'), 'images', 200).json as { RepoTags?: string[]; Id: string }[];
    if (!images.some((i) => i.RepoTags?.includes(ctx.images.big))) throw new Error(`${ctx.images.big} not in berthd's image list`);
    const top = await overlayTopChain(stateDir);
    const samples = await repeat(ctx.n.create, 3, async () => {
      const id = crypto.randomBytes(32).toString('hex');
      const { seconds } = await timed(async () => {
        await driver.create(id, top);
        await driver.mount(id);
      });
      await driver.unmount(id);
      await driver.remove(id);
      return seconds * 1000;
    });
    record('create.overlay.driver', S, what, 'storage.overlay create+mount', 'ms', samples);
    absolute({ section: S, what, measure: 'create.overlay.driver', max: 10 });
  });
}

/** The deepest chain in the overlay store (the big image's top layer): the layer no one names as parent. */
async function overlayTopChain(stateDir: string): Promise<string> {
  const layers = path.join(stateDir, 'layers');
  const names = (await fs.readdir(layers)).filter((n) => /^[0-9a-f]{64}$/.test(n));
  const parentOf = new Map<string, string>();
  for (const n of names) parentOf.set(n, (await fs.readFile(path.join(layers, n, 'parent'), 'utf8').catch(() => '')).trim().replace(/^sha256:/, ''));
  const depth = (n: string): number => (parentOf.get(n) ? 1 + depth(parentOf.get(n)!) : 0);
  const deepest = names.sort((a, b) => depth(b) - depth(a))[0];
  if (!deepest) throw new Error(`no layers under ${layers}`);
  return `sha256:${deepest}`;
}

// ---- 5. burst ------------------------------------------------------------------------------------

async function benchBurst(ctx: Ctx): Promise<void> {
  const S = 'burst';
  const N = ctx.n.burst;
  const img = ctx.images.busybox;
  log(`[burst] ${N} containers started at once, per tool`);
  const whatApi = `${N} x create+start+wait of \`true\` at once, over the API`;
  const whatCli = `${N} x \`run --rm IMG true\` at once, CLI processes`;
  const apiBurst = async (tool: string, api: Berthd['api'], prefix: string) => {
    const { seconds, value } = await timed(() => Promise.allSettled(Array.from({ length: N }, () => apiRunOnce(api, img, ['true'], prefix))));
    const okCount = value.filter((r) => r.status === 'fulfilled' && r.value.exitCode === 0).length;
    const ids = value.flatMap((r) => (r.status === 'fulfilled' ? [r.value.id] : []));
    await Promise.allSettled(ids.map((id) => apiRemove(api, id, prefix)));
    const firstError = value.find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined;
    const why = firstError ? `first error: ${String(firstError.reason?.message ?? firstError.reason).slice(0, 200)}` : undefined;
    record(`burstapi.${tool}`, S, whatApi, `${tool} API`, 's', [seconds], why, [okCount, N]);
  };
  const cliBurst = async (tool: string, run: (args: string[]) => Promise<CmdResult>, extra: string[]) => {
    const { seconds, value } = await timed(() => Promise.all(Array.from({ length: N }, () => run(['run', '--rm', ...extra, img, 'true']))));
    const okCount = value.filter((r) => r.code === 0).length;
    const firstError = value.find((r) => r.code !== 0);
    const why = firstError ? `first error: ${firstError.stderr.trim().split('\n').pop()?.slice(0, 200)}` : undefined;
    record(`burstcli.${tool}`, S, whatCli, `${tool} run --rm`, 's', [seconds], why, [okCount, N]);
  };
  await attempt(S, 'berth', async () => {
    const d = await berthMain(ctx);
    await apiBurst('berth', d.api, '');
    await cliBurst('berth', (a) => d.cli(a, 300_000), ['--network', 'none']);
  });
  if (ctx.docker) {
    await attempt(S, 'docker', async () => {
      const docker = await dockerMain(ctx);
      await apiBurst('docker', docker.api, '/v1.41');
      await cliBurst('docker', (a) => docker.cli(a, 300_000), ['--network', 'none']);
    });
  } else skip(S, 'docker', ctx.dockerWhy!);
  if (ctx.podmanWhy) skip(S, 'podman', ctx.podmanWhy);
  else {
    await attempt(S, 'podman', async () => {
      const p = await podmanMain(ctx);
      await cliBurst('podman', (a) => p.run(a, 300_000), ['--network', 'none']);
    });
  }
  compare({ section: S, what: whatApi, berth: 'burstapi.berth', peer: 'burstapi.docker' });
  compare({ section: S, what: whatCli, berth: 'burstcli.berth', peer: 'burstcli.podman' });
  compare({ section: S, what: whatCli, berth: 'burstcli.berth', peer: 'burstcli.docker' });
}

// ---- 7. scale: many containers and images, memory per container ----------------------------------

/**
 * Anonymous RSS once it settles: the least of samples over a few seconds. V8 grows its young
 * generation under allocation bursts and gives the pages back only once idle, so one reading right
 * after starting containers measures the burst, not what the containers keep (a heap snapshot
 * diff shows ~12-30 KiB of JS objects per running container).
 */
async function settledAnonKiB(pid: number): Promise<number> {
  let least = Infinity;
  for (let i = 0; i < 10; i++) {
    await sleep(500);
    least = Math.min(least, statusKiB(pid, 'RssAnon'));
  }
  return least;
}

/** Run `tasks` with `limit` at once. */
async function inBatches<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await fn(items[next++]);
    }),
  );
}

async function benchScale(ctx: Ctx): Promise<void> {
  const S = 'scale';
  const RUNNING = 100;
  const CONTAINERS = 1000;
  const IMAGES = 500;
  log(`[scale] ${RUNNING} running containers, then ${CONTAINERS} in all and ${IMAGES} images, on a berthd of its own`);
  await attempt(S, 'berth', async () => {
    const d = await startBerthd(dirFor(ctx, 'scale'));
    const ids: string[] = [];
    ctx.cleanup.add('remove scale containers, stop berthd', async () => {
      await inBatches([...ids], 8, (id) => apiRemove(d.api, id).catch(() => undefined));
      await d.stop();
    });
    ok(await d.cli(['pull', '-q', ctx.images.busybox], 120_000), 'berth pull busybox');
    const create = async (cmd: string[]) => {
      const res = expectStatus(await d.api('/containers/create', { method: 'POST', body: { Image: ctx.images.busybox, Cmd: cmd, HostConfig: { NetworkMode: 'none' } } }), 'create', 201);
      ids.push(res.json.Id as string);
      return res.json.Id as string;
    };

    // Memory: berthd's anonymous RSS idle, then with RUNNING containers; each one's monitor.
    const anonIdle = await settledAnonKiB(d.pid);
    record('scale.anon.idle', S, 'berthd anonymous RSS (RssAnon), idle', 'berthd', 'MB', [anonIdle / 1024]);
    absolute({ section: S, what: 'berthd anonymous RSS (RssAnon), idle', measure: 'scale.anon.idle', max: 30 });
    await inBatches(
      Array.from({ length: RUNNING }, (_, i) => i),
      4,
      async () => {
        const id = await create(['sleep', '600']);
        expectStatus(await d.api(`/containers/${id}/start`, { method: 'POST' }), 'start', 204);
      },
    );
    const anonBusy = await settledAnonKiB(d.pid);
    const perContainer = (anonBusy - anonIdle) / RUNNING;
    record('scale.anon.per', S, `berthd anonymous RSS added per running container (${RUNNING} running)`, 'berthd', 'KiB', [perContainer]);
    absolute({ section: S, what: `berthd anonymous RSS added per running container (${RUNNING} running)`, measure: 'scale.anon.per', max: 100 });
    const monitors: number[] = [];
    for (const id of ids) {
      const pid = (await d.api(`/containers/${id}/json`)).json?.State?.Pid as number;
      const ppid = Number(/^PPid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
      if (commOf(ppid).startsWith('berth-launch')) monitors.push(rssMB(ppid));
    }
    if (monitors.length) {
      record('scale.monitor', S, 'monitor (berth-launch) RSS per running container', 'berth-launch', 'MB', monitors);
      absolute({ section: S, what: 'monitor (berth-launch) RSS per running container', measure: 'scale.monitor', max: 1 });
    }

    // Listing: CONTAINERS containers (the running ones plus created ones), then IMAGES images.
    await inBatches(
      Array.from({ length: CONTAINERS - RUNNING }, (_, i) => i),
      4,
      async () => void (await create(['true'])),
    );
    const listTimes = async (urlPath: string, expect: number) => {
      const samples: number[] = [];
      for (let i = 0; i < 10; i++) {
        const { seconds, value } = await timed(() => d.api(urlPath));
        const n = (expectStatus(value, urlPath, 200).json as unknown[]).length;
        if (n < expect) throw new Error(`${urlPath} listed ${n}, expected at least ${expect}`);
        samples.push(seconds * 1000);
      }
      return samples;
    };
    const whatPs = `GET /containers/json?all=1 with ${CONTAINERS} containers`;
    record('scale.ps', S, whatPs, 'berthd', 'ms', await listTimes('/containers/json?all=1', CONTAINERS));
    absolute({ section: S, what: whatPs, measure: 'scale.ps', max: 50 });

    // Distinct images, each one file of its own (docker import of a tiny tar).
    await inBatches(
      Array.from({ length: IMAGES }, (_, i) => i),
      4,
      async (i) => {
        const tar = await tarOf([{ name: `image-${i}`, content: `${i}\n` }]);
        expectStatus(await d.api(`/images/create?fromSrc=-&repo=scale/img${i}&tag=latest`, { method: 'POST', body: tar, headers: { 'content-type': 'application/x-tar' } }), `import ${i}`, 200);
      },
    );
    const whatImages = `GET /images/json with ${IMAGES} images`;
    record('scale.images', S, whatImages, 'berthd', 'ms', await listTimes('/images/json', IMAGES));
    absolute({ section: S, what: whatImages, measure: 'scale.images', max: 50 });
  });
}

// ---- report --------------------------------------------------------------------------------------

function fmt(m: Measure | undefined): string {
  if (!m) return '-';
  if (m.succeeded) return `${fmtValue(m)} (${m.succeeded[0]}/${m.succeeded[1]} ok)`;
  return fmtValue(m);
}

function fmtValue(m: Measure): string {
  const v = m.median;
  if (m.unit === 's') return v < 1 ? `${(v * 1000).toFixed(0)} ms` : `${v.toFixed(2)} s`;
  if (m.unit === 'ms') return `${v.toFixed(v < 10 ? 2 : 1)} ms`;
  if (m.unit === 'MB') return `${v.toFixed(1)} MB`;
  if (m.unit === 'KiB') return `${v.toFixed(0)} KiB`;
  return String(v);
}

interface Row {
  section: string;
  what: string;
  berth: string;
  peerTool: string;
  peer: string;
  ratio: string;
  target: string;
  verdict: string;
}

function buildRows(): { rows: Row[]; targetResults: { what: string; against: string; value: number | null; target: string; met: boolean | null }[] } {
  const rows: Row[] = [];
  const targetResults: { what: string; against: string; value: number | null; target: string; met: boolean | null }[] = [];
  const shownBerth = new Set<string>();
  const items = [...comparisons.map((c) => ({ seq: c.seq!, c, t: undefined })), ...absoluteTargets.map((t) => ({ seq: t.seq!, c: undefined, t }))].sort((x, y) => x.seq - y.seq);
  for (const { c, t } of items) {
    if (c) {
      const b = measures.get(c.berth);
      const p = measures.get(c.peer);
      const ratio = b && p ? b.median / p.median : NaN;
      const peerTool = p?.tool ?? c.peer.split('.').slice(1).join('.') + ' (skipped)';
      const verdict = c.target === undefined ? '' : Number.isNaN(ratio) ? 'n/a' : ratio <= c.target ? 'met' : 'MISSED';
      rows.push({
        section: c.section,
        what: shownBerth.has(c.berth) ? '' : c.what,
        berth: shownBerth.has(c.berth) ? '' : fmt(b),
        peerTool,
        peer: fmt(p),
        ratio: Number.isNaN(ratio) ? '-' : `${ratio.toFixed(2)}x`,
        target: c.target === undefined ? '' : `<= ${c.target.toFixed(2)}x`,
        verdict,
      });
      shownBerth.add(c.berth);
      if (c.target !== undefined)
        targetResults.push({ what: c.what, against: peerTool, value: Number.isNaN(ratio) ? null : ratio, target: `<= ${c.target}x`, met: Number.isNaN(ratio) ? null : ratio <= c.target });
    } else if (t) {
      const m = measures.get(t.measure);
      const met = m ? m.median <= t.max : null;
      rows.push({
        section: t.section,
        what: t.what,
        berth: fmt(m),
        peerTool: '(absolute target)',
        peer: '',
        ratio: '',
        target: `<= ${t.max} ${m?.unit ?? 'ms'}`,
        verdict: met === null ? 'n/a' : met ? 'met' : 'MISSED',
      });
      targetResults.push({ what: t.what, against: 'absolute', value: m?.median ?? null, target: `<= ${t.max} ${m?.unit ?? 'ms'}`, met });
    }
  }
  return { rows, targetResults };
}

function printTable(rows: Row[]): void {
  const header: Row = { section: 'section', what: 'what', berth: 'berth', peerTool: 'peer', peer: 'peer median', ratio: 'berth/peer', target: 'target', verdict: '' };
  const cols: (keyof Row)[] = ['section', 'what', 'berth', 'peerTool', 'peer', 'ratio', 'target', 'verdict'];
  const width = Object.fromEntries(cols.map((c) => [c, Math.max(...[header, ...rows].map((r) => r[c].length))])) as Record<keyof Row, number>;
  const line = (r: Row) =>
    cols
      .map((c) => (c === 'berth' || c === 'peer' || c === 'ratio' ? r[c].padStart(width[c]) : r[c].padEnd(width[c])))
      .join('  ')
      .trimEnd();
  console.log(line(header));
  console.log(cols.map((c) => '-'.repeat(width[c])).join('  '));
  let section = '';
  for (const r of rows) {
    console.log(line({ ...r, section: r.section === section ? '' : r.section }));
    section = r.section;
  }
}

/** `/sys/fs/cgroup/X/docker` for every hierarchy X reads as one entry: `cgroup docker/ (10 hierarchies)`. */
function summarisePaths(paths: string[]): string {
  const cgroups = new Map<string, number>();
  const other: string[] = [];
  for (const p of paths) {
    const m = /^\/sys\/fs\/cgroup\/(?:[^/]+\/)?([^/]+)$/.exec(p);
    if (m) cgroups.set(m[1], (cgroups.get(m[1]) ?? 0) + 1);
    else other.push(p);
  }
  return [...other, ...[...cgroups].map(([name, n]) => `cgroup ${name}/ (${n} hierarchies)`)].join(', ');
}

// ---- main ----------------------------------------------------------------------------------------

const SECTIONS = ['pull', 'run', 'exec', 'commit', 'storage', 'burst', 'scale'] as const;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      json: { type: 'string', default: path.resolve('bench-results.json') },
      only: { type: 'string' },
      pulls: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    console.log('Usage: npm run bench -- [--quick] [--pulls N] [--json PATH] [--only pull,run,exec,commit,storage,burst]');
    return 0;
  }
  const only = values.only ? values.only.split(',').map((s) => s.trim()) : [...SECTIONS];
  for (const s of only) if (!(SECTIONS as readonly string[]).includes(s)) throw new Error(`--only: unknown section "${s}" (one of ${SECTIONS.join(', ')})`);
  if (process.getuid?.() !== 0) throw new Error('the bench needs root (real mounts, namespaces, cgroups, and the peers run as root)');
  for (const f of [BERTHD_JS, CLI_JS]) if (!existsSync(f)) throw new Error(`${f} is missing: run \`npm run build\` first`);
  for (const tool of ['umoci', 'skopeo', 'docker-registry']) if (!which(tool)) throw new Error(`${tool} is needed to build and serve the bench images, and is not installed`);

  const quick = values.quick!;
  const n = quick ? { pull: 1, run: 5, exec: 5, commit: 2, create: 10, vfs: 1, burst: 50 } : { pull: 5, run: 15, exec: 15, commit: 5, create: 30, vfs: 3, burst: 50 };
  if (values.pulls !== undefined) {
    n.pull = Number(values.pulls);
    if (!Number.isInteger(n.pull) || n.pull < 1) throw new Error(`--pulls: expected a whole number >= 1, got "${values.pulls}"`);
  }
  const started = Date.now();
  const cleanup = new Cleanup();
  // Short base path: unix socket paths stop at 107 bytes.
  const base = await fs.mkdtemp(path.join(os.tmpdir(), 'bb-'));
  cleanup.add(`remove ${base}`, () => removeTree(base));
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    log(`\n${sig}: cleaning up...`);
    void cleanup.run().then((problems) => {
      for (const p of problems) log(`cleanup: ${p}`);
      process.exit(130);
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const versions: Record<string, string> = {
    node: process.version,
    kernel: os.release(),
    cpus: String(os.cpus().length),
    NODE_EXTRA_CA_CERTS: process.env.NODE_EXTRA_CA_CERTS ? 'set' : 'unset',
    'berth CLI': CLI_COMMAND.length === 1 ? `${CLI_JS} via its shebang (${readFileSync(CLI_JS, 'utf8').split('\n')[0].slice(2)})` : `${process.execPath} ${CLI_JS}`,
  };
  const loadStart = os.loadavg();
  let exitCode = 0;
  const residueBefore = hostResidueBefore();
  try {
    log(`bench: ${quick ? 'quick' : 'full'} run, sections ${only.join(', ')}, work dir ${base}`);
    const registry = await startRegistry();
    trackedPids.add(registry.pid);
    cleanup.add('stop docker-registry', () => registry.stop());
    log(`registry on ${registry.host}; building images with umoci (busybox; + 4 x ${DEFAULT_BIG.bytesPerLayer / 1048576} MiB of random data; + host files) ...`);
    const shape: BigImageShape = DEFAULT_BIG;
    const { seconds: buildSeconds, value: images } = await timed(() => buildAndPushImages(path.join(base, 'images'), registry.host, shape));
    log(`images built and pushed in ${buildSeconds.toFixed(1)} s`);

    const ctx: Ctx = { base, quick, images, registry, cleanup, versions, n };
    ctx.skopeoWhy = which('skopeo') ? undefined : 'skopeo not installed';
    ctx.runcWhy = which('runc') ? undefined : 'runc not installed';
    ctx.podmanWhy = podmanMissing();
    ctx.dockerWhy = dockerMissing();
    versions.skopeo = (await runCmd('skopeo', ['--version'])).stdout.trim();
    if (!ctx.runcWhy) versions.runc = (await runCmd('runc', ['--version'])).stdout.split('\n')[0].trim();
    if (!ctx.podmanWhy) {
      // podman is usable only if it starts on a temp root with the flags used below.
      await attempt('setup', 'podman', async () => {
        const p = await podmanInstance(dirFor(ctx, 'podman-probe'));
        try {
          ok(await p.run(['info', '--format', '{{.Version.Version}}']), 'podman info');
          versions.podman = p.version;
        } finally {
          await p.stop();
        }
      });
      if (skips.some((s) => s.tool === 'podman')) ctx.podmanWhy = `podman did not start: ${skips.find((s) => s.tool === 'podman')!.reason}`;
    }
    const needDocker = only.some((s) => s !== 'storage');
    if (!ctx.dockerWhy && needDocker) {
      try {
        const docker = await startDockerd(dirFor(ctx, 'docker'));
        ctx.docker = docker;
        cleanup.add('stop dockerd', () => docker.stop());
        versions.dockerd = docker.version;
        versions.docker = (await runCmd('docker', ['--version'])).stdout.trim();
        log(`dockerd ${docker.version} on ${docker.socket} (pid ${docker.pid})`);
      } catch (err) {
        ctx.dockerWhy = `dockerd failed to start: ${(err as Error).message}`;
      }
    }
    if (ctx.dockerWhy) log(`docker: skipped (${ctx.dockerWhy})`);
    if (ctx.podmanWhy) log(`podman: skipped (${ctx.podmanWhy})`);

    const sections: Record<(typeof SECTIONS)[number], (c: Ctx) => Promise<void>> = {
      pull: benchPull,
      run: benchRun,
      exec: benchExec,
      commit: benchCommit,
      storage: benchStorage,
      burst: benchBurst,
      scale: benchScale,
    };
    for (const s of SECTIONS) {
      if (!only.includes(s)) continue;
      const t = await timed(() => sections[s](ctx));
      log(`[${s}] done in ${t.seconds.toFixed(1)} s`);
      if (interrupted) break;
    }
  } catch (err) {
    log(`bench failed: ${(err as Error).stack ?? err}`);
    exitCode = 1;
  }

  // ---- cleanup, then the check that nothing is left ----
  // Processes still naming the work dir (conmon, containerd-shim ...) would hold mounts: note them first.
  const strays = processesMentioning(base);
  const problems = await cleanup.run();
  const residue = await removeHostResidue(residueBefore);
  const leftMounts = mountsUnder(base);
  const leftPids = [...trackedPids].filter(pidAlive);
  const leftStrays = processesMentioning(base);
  const leftDir = existsSync(base);
  for (const p of problems) log(`cleanup: ${p}`);
  for (const f of residue.failed) log(`cleanup: could not remove ${f}`);
  const cleanupReport = {
    mountsLeft: leftMounts,
    pidsLeft: leftPids,
    processesLeft: leftStrays,
    processesBeforeCleanup: strays,
    workDirLeft: leftDir,
    hostPathsRemoved: residue.removed,
    hostPathsNotRemoved: residue.failed,
    problems,
  };
  const clean = !leftMounts.length && !leftPids.length && !leftStrays.length && !leftDir && !residue.failed.length;
  if (!clean) {
    log(`cleanup INCOMPLETE: mounts ${JSON.stringify(leftMounts)}, pids ${JSON.stringify(leftPids)}, processes ${JSON.stringify(leftStrays)}, work dir left: ${leftDir}`);
    exitCode = exitCode || 1;
  }

  const { rows, targetResults } = buildRows();
  console.log(`\nberth bench (${quick ? 'quick' : 'full'}), medians; ratio = berth / peer (lower is better for berth)`);
  console.log(
    Object.entries(versions)
      .map(([k, v]) => `${k}: ${v}`)
      .join('; '),
  );
  const loadEnd = os.loadavg();
  console.log(
    `load average (1 min) at start ${loadStart[0].toFixed(2)}, at end ${loadEnd[0].toFixed(2)} on ${os.cpus().length} CPUs: other work on the machine skews every figure, the ratios less so (tools are interleaved)`,
  );
  console.log('');
  printTable(rows);
  const notes = [...measures.values()].filter((m) => m.note);
  if (notes.length) {
    console.log('\nnotes:');
    for (const m of notes) console.log(`  ${m.tool} (${m.what}): ${m.note}`);
  }
  const info = [...measures.values()].filter((m) => !comparisons.some((c) => c.berth === m.id || c.peer === m.id) && !absoluteTargets.some((t) => t.measure === m.id));
  if (info.length) {
    console.log('\nother figures:');
    for (const m of info) console.log(`  ${m.what} - ${m.tool}: ${fmt(m)}`);
  }
  if (skips.length) {
    console.log('\nskipped:');
    for (const s of skips) console.log(`  ${s.section}: ${s.tool}: ${s.reason}`);
  }
  console.log(
    `\ncleanup: ${clean ? 'no mounts (checked /proc/self/mountinfo), processes or temp dirs left' : 'INCOMPLETE (see above)'}${residue.removed.length ? `; removed peer leftovers outside the work dir: ${summarisePaths(residue.removed)}` : ''}; total ${((Date.now() - started) / 1000).toFixed(0)} s`,
  );

  const out = {
    date: new Date().toISOString(),
    mode: quick ? 'quick' : 'full',
    host: { hostname: os.hostname(), cpus: os.cpus().length, memoryMB: Math.round(os.totalmem() / 1048576), loadavgStart: loadStart, loadavgEnd: loadEnd },
    versions,
    iterations: n,
    measures: [...measures.values()],
    comparisons: comparisons.map((c) => {
      const b = measures.get(c.berth);
      const p = measures.get(c.peer);
      return { ...c, berthMedian: b?.median ?? null, peerMedian: p?.median ?? null, ratio: b && p ? b.median / p.median : null };
    }),
    targets: targetResults,
    skipped: skips,
    cleanup: cleanupReport,
    seconds: (Date.now() - started) / 1000,
  };
  await fs.writeFile(values.json!, JSON.stringify(out, null, 2) + '\n');
  console.log(`raw samples: ${values.json}`);
  return exitCode;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`bench: ${(err as Error).message}\n`);
    process.exit(1);
  },
);
