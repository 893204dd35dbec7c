/**
 * `berth bench isolation`: the same containers under several configs, side by side. For each
 * config a private berthd is spawned (its own temp root and socket; the config file is used as
 * is, so relative plugin paths still resolve from its folder), the image is pulled, N containers
 * are started one after another, and a fixed set of escape probes runs in containers.
 *
 * Client side only: this talks to the daemons over their sockets and reads /proc; it loads no
 * engine code (the CLI's rule).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promises as fs, openSync, closeSync, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { Client } from './client';

const execFileP = promisify(execFile);

export interface IsolationBenchOptions {
  configs: string[];
  image: string;
  /** Containers started per config. */
  n: number;
  /** berthd's entry script; default: the one next to this CLI. */
  berthd?: string;
  /** Progress lines (one per step). */
  progress?: (line: string) => void;
}

export interface Stat {
  samples: number[];
  p50: number;
  p95: number;
}

export interface Probes {
  /** A host process (berthd) is visible in the container's /proc. */
  seesHostPids: boolean;
  /** `mount -t tmpfs` inside the container succeeds. */
  canMount: boolean;
  /** Writing /proc/sys/kernel/hostname (its own value back) succeeds. */
  canWriteProcSys: boolean;
  /** CAP_SYS_MODULE is in the effective set. */
  canLoadModule: boolean;
  /** One of the host's network links (by MAC address) is visible in the container. */
  seesHostNetwork: boolean;
  /** The root filesystem is writable (a file can be made in /). */
  writesRootfs: boolean;
  /** A process allocated more than its 32 MiB memory limit and lived. */
  exceedsMemoryLimit: boolean;
  /** The probe script's raw output, for the curious. */
  output: string;
}

export interface ConfigResult {
  config: string;
  runtime: string;
  storageDriver: string;
  isolators: string[];
  /** create + start over the API, client-measured, ms. */
  startMs: Stat;
  /** berthd-side ms per `<isolator uri> <phase>` and `total start`. */
  phasesMs: Record<string, Stat>;
  /** RSS of the processes between berthd and the container (launcher monitor; sh + runc), KiB. */
  monitorRssKiB: Stat;
  /** The container's memory (cgroup usage when an isolator reports it, else its RSS), KiB. */
  containerMemoryKiB: Stat;
  /** berthd's own RSS after the runs, KiB. */
  daemonRssKiB: number;
  probes: Probes;
}

export interface IsolationBenchResult {
  image: string;
  n: number;
  host: { kernel: string; cpus: number; node: string };
  configs: ConfigResult[];
}

export function stat(samples: number[]): Stat {
  const s = [...samples].sort((a, b) => a - b);
  const pick = (q: number) => (s.length ? s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] : 0);
  const round = (x: number) => Math.round(x * 100) / 100;
  return { samples: samples.map(round), p50: round(pick(0.5)), p95: round(pick(0.95)) };
}

/** VmRSS of a pid in KiB (0 when it is gone). */
function rssKiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

function parentOf(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return 0;
  }
}

/** RSS of the supervising processes: the container's ancestors up to (not including) berthd or init. */
function monitorRss(containerPid: number, berthdPid: number): number {
  let total = 0;
  for (let p = parentOf(containerPid), hops = 0; p > 1 && p !== berthdPid && hops < 8; p = parentOf(p), hops++) total += rssKiB(p);
  return total;
}

// Uses only applets every test image links (sh, grep, cat, mkdir, mount, touch, echo): the
// probes assume a busybox-like image. `berth[d]` keeps the probe from matching its own cmdline.
const PROBE_SCRIPT = [
  'y() { if "$@" >/dev/null 2>&1; then echo yes; else echo no; fi; }',
  'echo "hostpids=$(y grep -q "berth[d]" /proc/[0-9]*/cmdline)"',
  'mkdir -p /tmp/probe-mnt 2>/dev/null',
  'echo "mount=$(y mount -t tmpfs probe /tmp/probe-mnt)"',
  'echo "procsys=$(y sh -c "cat /proc/sys/kernel/hostname > /proc/sys/kernel/hostname")"',
  'cap=$(grep CapEff /proc/self/status); cap=$(echo ${cap#CapEff:})',
  'echo "module=$([ $(( (0x$cap >> 16) & 1 )) = 1 ] && echo yes || echo no)"',
  'echo "rootfs=$(y touch /probe-rootfs-write)"',
  // A bridge/veth network of the container's own is fine; the host's links (same MACs) are not.
  'echo "macs=" $(cat /sys/class/net/*/address 2>/dev/null | grep -v 00:00:00:00:00:00)',
].join('\n');

/** Doubles a string to 64 MiB; under a 32 MiB limit the kernel should kill it first. */
const MEMORY_SCRIPT = 'x=0123456789abcdef; i=0; while [ $i -lt 22 ]; do x="$x$x"; i=$((i+1)); done; echo allocated ${#x}';

/** MAC addresses of the host's own links (not loopback), from the bench's network namespace. */
function hostMacs(): string[] {
  return Object.values(os.networkInterfaces())
    .flatMap((list) => (list ?? []).map((a) => a.mac))
    .filter((m) => m && m !== '00:00:00:00:00:00');
}

/** Docker's multiplexed log stream -> text (both streams). */
function demux(buf: Buffer): string {
  let out = '';
  let i = 0;
  while (i + 8 <= buf.length) {
    const len = buf.readUInt32BE(i + 4);
    out += buf.subarray(i + 8, i + 8 + len).toString('utf8');
    i += 8 + len;
  }
  return out;
}

async function readAll(res: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Daemons this process started: a Ctrl-C still stops them and removes their temp roots. */
const live = new Set<Daemon>();
let handlersInstalled = false;
function stopAllOnSignal(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      void Promise.all([...live].map((d) => d.stop().catch(() => undefined))).finally(() => process.exit(130));
    });
  }
}

class Daemon {
  private constructor(
    readonly dir: string,
    readonly client: Client,
    readonly child: ChildProcess,
    readonly logFile: string,
  ) {}

  static async start(configFile: string, berthd: string): Promise<Daemon> {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'bb-'));
    const socket = path.join(dir, 's.sock');
    const logFile = path.join(dir, 'berthd.log');
    const log = openSync(logFile, 'a');
    const child = spawn(process.execPath, [berthd, '--config', configFile, '--root', path.join(dir, 'root'), '--socket', socket], {
      cwd: dir,
      stdio: ['ignore', log, log],
    });
    closeSync(log);
    const d = new Daemon(dir, new Client(socket), child, logFile);
    live.add(d);
    stopAllOnSignal();
    let exited = false;
    child.once('exit', () => (exited = true));
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (exited) {
        const text = await fs.readFile(logFile, 'utf8').catch(() => '');
        await d.cleanup();
        throw new Error(`berthd did not start with ${configFile}:\n${text.trim().split('\n').slice(-5).join('\n')}`);
      }
      try {
        await d.client.json('/_ping').catch(async (e) => {
          if (e instanceof SyntaxError) return; // "OK" is not JSON: it answered
          throw e;
        });
        return d;
      } catch {
        if (Date.now() > deadline) {
          await d.stop();
          throw new Error(`berthd did not answer on ${socket} within 30 s (config ${configFile})`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const gone = new Promise((r) => this.child.once('exit', r));
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
      await gone;
      clearTimeout(timer);
    }
    await this.cleanup();
  }

  private async cleanup(): Promise<void> {
    live.delete(this);
    // Whatever berthd left mounted under its temp root goes before the dir does.
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4])
      .filter((p) => p && p.startsWith(this.dir + '/'));
    for (const m of mounts.sort((a, b) => b.length - a.length)) await execFileP('umount', ['-l', m]).catch(() => undefined);
    await fs.rm(this.dir, { recursive: true, force: true });
  }
}

async function pull(client: Client, image: string): Promise<void> {
  const colon = image.lastIndexOf(':');
  const tagged = colon > image.lastIndexOf('/');
  let error: string | undefined;
  await client.stream('/images/create', { method: 'POST', query: { fromImage: tagged ? image.slice(0, colon) : image, tag: tagged ? image.slice(colon + 1) : 'latest' } }, (m) => {
    if (m.error) error = m.error;
  });
  if (error) throw new Error(`pull ${image}: ${error}`);
}

async function runToEnd(client: Client, image: string, cmd: string[], hostConfig: object = {}): Promise<{ code: number; output: string }> {
  const { Id } = await client.json('/containers/create', { method: 'POST', body: { Image: image, Cmd: cmd, HostConfig: hostConfig } });
  try {
    await client.json(`/containers/${Id}/start`, { method: 'POST' });
    const waited = await client.json(`/containers/${Id}/wait`, { method: 'POST' });
    const logs = await readAll(await client.request(`/containers/${Id}/logs`, { query: { stdout: 1, stderr: 1 } }));
    return { code: waited.StatusCode, output: demux(logs) };
  } finally {
    await client
      .request(`/containers/${Id}`, { method: 'DELETE', query: { force: 1 } })
      .then(readAll)
      .catch(() => undefined);
  }
}

async function benchConfig(configFile: string, opts: IsolationBenchOptions): Promise<ConfigResult> {
  const say = opts.progress ?? (() => undefined);
  const berthd = opts.berthd ?? path.resolve(__dirname, '..', 'daemon', 'berthd.js');
  say(`${configFile}: starting berthd`);
  const daemon = await Daemon.start(configFile, berthd);
  const { client } = daemon;
  try {
    const info = await client.json('/info');
    const plugins = await client.json<{ uri: string; type: string; id: string; status: string }[]>('/berth/plugins');
    say(`${configFile}: pulling ${opts.image}`);
    await pull(client, opts.image);
    const starts: number[] = [];
    const phases: Record<string, number[]> = {};
    const monitors: number[] = [];
    const memories: number[] = [];
    for (let i = 0; i < opts.n; i++) {
      const t0 = performance.now();
      const { Id } = await client.json('/containers/create', { method: 'POST', body: { Image: opts.image, Cmd: ['sleep', '60'] } });
      try {
        await client.json(`/containers/${Id}/start`, { method: 'POST' });
        starts.push(performance.now() - t0);
        const { Timings } = await client.json(`/berth/containers/${Id}/timings`);
        for (const [k, v] of Object.entries(Timings as Record<string, number>)) (phases[k] ??= []).push(v);
        const inspect = await client.json(`/containers/${Id}/json`);
        monitors.push(monitorRss(inspect.State.Pid, daemon.child.pid!));
        const stats = await client.json(`/containers/${Id}/stats`, { query: { stream: 'false' } }).catch(() => undefined);
        const usage = Number(stats?.memory_stats?.usage ?? 0);
        memories.push(usage > 0 ? Math.round(usage / 1024) : rssKiB(inspect.State.Pid));
      } finally {
        await client
          .request(`/containers/${Id}`, { method: 'DELETE', query: { force: 1 } })
          .then(readAll)
          .catch(() => undefined);
      }
      say(`${configFile}: container ${i + 1}/${opts.n} started in ${starts.at(-1)?.toFixed(1)} ms`);
    }
    say(`${configFile}: escape probes`);
    const probe = await runToEnd(client, opts.image, ['sh', '-c', PROBE_SCRIPT]);
    const answer = (key: string) => new RegExp(`^${key}=yes$`, 'm').test(probe.output);
    const mem = await runToEnd(client, opts.image, ['sh', '-c', MEMORY_SCRIPT], { Memory: 32 << 20, MemorySwap: 32 << 20 }).catch((e: Error) => ({ code: -1, output: e.message }));
    const daemonRssKiB = rssKiB(daemon.child.pid!);
    return {
      config: configFile,
      runtime: String(info.DefaultRuntime ?? ''),
      storageDriver: String(info.Driver ?? ''),
      isolators: plugins.filter((p) => p.type === 'isolator' && p.status === 'ok').map((p) => p.id),
      startMs: stat(starts),
      phasesMs: Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, stat(v)])),
      monitorRssKiB: stat(monitors),
      containerMemoryKiB: stat(memories),
      daemonRssKiB,
      probes: {
        seesHostPids: answer('hostpids'),
        canMount: answer('mount'),
        canWriteProcSys: answer('procsys'),
        canLoadModule: answer('module'),
        seesHostNetwork: hostMacs().some((mac) => (/^macs=(.*)$/m.exec(probe.output)?.[1] ?? '').split(/\s+/).includes(mac)),
        writesRootfs: answer('rootfs'),
        exceedsMemoryLimit: mem.code === 0 && /allocated/.test(mem.output),
        output: probe.output.trim(),
      },
    };
  } finally {
    await daemon.stop();
  }
}

export async function benchIsolation(opts: IsolationBenchOptions): Promise<IsolationBenchResult> {
  if (!opts.configs.length) throw new Error('bench isolation: give at least one --config FILE');
  if (!(opts.n >= 1)) throw new Error(`bench isolation: -n must be a positive integer, got ${opts.n}`);
  for (const c of opts.configs) {
    await fs.access(c).catch(() => {
      throw new Error(`bench isolation: config file not found: ${c}`);
    });
  }
  const configs: ConfigResult[] = [];
  for (const c of opts.configs) configs.push(await benchConfig(path.resolve(c), opts));
  return { image: opts.image, n: opts.n, host: { kernel: os.release(), cpus: os.cpus().length, node: process.version }, configs };
}

const yesNo = (b: boolean, bad = true) => (b === bad ? 'YES' : 'no');

/** The human tables: latency and memory, phases, probes. */
export function renderIsolation(r: IsolationBenchResult, table: (head: string[], rows: string[][]) => string): string {
  const name = (c: ConfigResult) => path.basename(c.config);
  const kib = (k: number) => (k >= 1024 ? `${(k / 1024).toFixed(1)} MiB` : `${k} KiB`);
  const out: string[] = [];
  out.push(`isolation bench: ${r.n} containers per config, image ${r.image}, ${r.host.cpus} CPUs, kernel ${r.host.kernel}\n`);
  out.push(
    table(
      ['CONFIG', 'RUNTIME', 'ISOLATORS', 'START P50', 'START P95', 'MONITOR RSS', 'CONTAINER MEM', 'BERTHD RSS'],
      r.configs.map((c) => [
        name(c),
        c.runtime,
        c.isolators.join(',') || '-',
        `${c.startMs.p50.toFixed(1)} ms`,
        `${c.startMs.p95.toFixed(1)} ms`,
        kib(c.monitorRssKiB.p50),
        kib(c.containerMemoryKiB.p50),
        kib(c.daemonRssKiB),
      ]),
    ),
  );
  const keys = [...new Set(r.configs.flatMap((c) => Object.keys(c.phasesMs)))].sort();
  out.push('\nberthd-side setup per isolator phase (p50 ms):\n');
  out.push(
    table(
      ['PHASE', ...r.configs.map(name)],
      keys.map((k) => [k, ...r.configs.map((c) => (c.phasesMs[k] ? c.phasesMs[k].p50.toFixed(2) : '-'))]),
    ),
  );
  out.push('\nescape probes (YES = the container could):\n');
  const probes: [string, keyof Probes][] = [
    ['sees host pids', 'seesHostPids'],
    ['can mount', 'canMount'],
    ['can write /proc/sys', 'canWriteProcSys'],
    ['can load a module', 'canLoadModule'],
    ['sees host network', 'seesHostNetwork'],
    ['writes its rootfs', 'writesRootfs'],
    ['exceeds memory limit', 'exceedsMemoryLimit'],
  ];
  out.push(
    table(
      ['PROBE', ...r.configs.map(name)],
      probes.map(([label, k]) => [label, ...r.configs.map((c) => yesNo(c.probes[k] as boolean))]),
    ),
  );
  return out.join('');
}
