/**
 * The peers, each kept off the machine's own state: a private dockerd (its own data root, exec
 * root, pidfile and socket, no iptables, no bridge), podman on temp roots with its own
 * containers.conf (CONTAINERS_CONF: the system file is never read nor changed), runc on a ready
 * bundle, skopeo.
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { apiRequest, type ApiInit, type ApiResponse } from '../helpers/daemon';
import { type CmdResult, childPids, commOf, mustRun, pidAlive, removeTree, rssMB, runCmd, sleep, trackedPids, waitGone, which } from './lib';

// ---- docker ------------------------------------------------------------------------------------

export interface Dockerd {
  pid: number;
  socket: string;
  version: string;
  /** The docker CLI against this daemon only. */
  cli(args: string[], timeoutMs?: number): Promise<CmdResult>;
  api(urlPath: string, init?: ApiInit): Promise<ApiResponse>;
  /** dockerd's RSS plus that of the containerd it started, in MB. */
  idleRss(): { dockerd: number; containerd: number };
  stop(): Promise<void>;
}

/** Why docker cannot be measured here, or undefined when both dockerd and the docker CLI exist. */
export function dockerMissing(): string | undefined {
  if (!which('dockerd')) return 'dockerd not installed (apt-get install docker.io)';
  if (!which('docker')) return 'docker CLI not installed';
  if (!which('containerd')) return 'containerd not installed (dockerd needs it)';
  return undefined;
}

export async function startDockerd(dir: string): Promise<Dockerd> {
  await fs.mkdir(dir, { recursive: true });
  const socket = path.join(dir, 'docker.sock');
  const configFile = path.join(dir, 'daemon.json');
  await fs.writeFile(configFile, '{}\n');
  const args = [
    '--config-file',
    configFile,
    '--data-root',
    path.join(dir, 'data'),
    '--exec-root',
    path.join(dir, 'exec'),
    '--pidfile',
    path.join(dir, 'docker.pid'),
    '-H',
    `unix://${socket}`,
    '--iptables=false',
    '--ip6tables=false',
    '--ip-masq=false',
    '--bridge=none',
    '--storage-driver',
    'overlay2',
  ];
  let output = '';
  const child = spawn('dockerd', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DOCKER_CONFIG: path.join(dir, 'cfg') } });
  child.stdout.on('data', (c) => (output = (output + c).slice(-20_000)));
  child.stderr.on('data', (c) => (output = (output + c).slice(-20_000)));
  let exited = false;
  const exitP = new Promise<void>((resolve) => child.once('exit', () => ((exited = true), resolve())));
  const pid = child.pid!;
  trackedPids.add(pid);
  let containerdPid = 0;
  const findContainerd = () => {
    if (!containerdPid || !pidAlive(containerdPid)) containerdPid = childPids(pid).find((p) => commOf(p) === 'containerd') ?? 0;
    if (containerdPid) trackedPids.add(containerdPid);
    return containerdPid;
  };
  const stop = async () => {
    const ctrd = findContainerd();
    if (!exited) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exitP;
      clearTimeout(timer);
    }
    // dockerd stops the containerd it started; if it did not, end that one (by its pid) ourselves.
    if (ctrd && !(await waitGone(ctrd, 5000))) {
      process.kill(ctrd, 'SIGKILL');
      await waitGone(ctrd, 5000);
    }
    await removeTree(dir);
  };
  const api = (p: string, init?: ApiInit) => apiRequest(socket, p, init);
  const deadline = Date.now() + 40_000;
  for (;;) {
    if (exited) {
      await removeTree(dir);
      throw new Error(`dockerd exited at start: ${lastLines(output)}`);
    }
    if (
      await api('/_ping').then(
        (r) => r.status === 200,
        () => false,
      )
    )
      break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`dockerd did not answer /_ping within 40 s: ${lastLines(output)}`);
    }
    await sleep(100);
  }
  findContainerd();
  const version = (await api('/version')).json?.Version ?? '?';
  const env = { ...process.env, DOCKER_HOST: `unix://${socket}`, DOCKER_CONFIG: path.join(dir, 'cfg'), DOCKER_CLI_HINTS: 'false' };
  return {
    pid,
    socket,
    version,
    cli: (cliArgs, timeoutMs) => runCmd('docker', cliArgs, { env, timeoutMs }),
    api,
    idleRss: () => ({ dockerd: rssMB(pid), containerd: findContainerd() ? rssMB(findContainerd()) : NaN }),
    stop,
  };
}

function lastLines(text: string): string {
  return text.trim().split('\n').slice(-5).join(' | ');
}

// ---- podman ------------------------------------------------------------------------------------

export interface Podman {
  version: string;
  /** podman on this instance's temp root. */
  run(args: string[], timeoutMs?: number): Promise<CmdResult>;
  /** Unmount and remove the root (after `podman rm -af` when containers may be left). */
  stop(): Promise<void>;
}

export function podmanMissing(): string | undefined {
  if (!which('podman')) return 'podman not installed (apt-get install podman)';
  if (!which('runc')) return 'runc not installed (podman is run with --runtime runc: crun refuses hybrid cgroups)';
  return undefined;
}

/**
 * A podman "instance": its own graph root, run root, tmp dir and config files under `dir`.
 * `default_ulimits = []`: podman's default RLIMIT_NOFILE is above the hard limit on these machines.
 */
export async function podmanInstance(dir: string): Promise<Podman> {
  await fs.mkdir(dir, { recursive: true });
  const root = path.join(dir, 'root');
  const runroot = path.join(dir, 'run');
  const tmpdir = path.join(dir, 'tmp');
  const conf = path.join(dir, 'containers.conf');
  const storageConf = path.join(dir, 'storage.conf');
  const registriesConf = path.join(dir, 'registries.conf');
  const policy = path.join(dir, 'policy.json');
  await fs.writeFile(
    conf,
    [
      '[containers]',
      'default_ulimits = []',
      'netns = "none"',
      '',
      '[engine]',
      'cgroup_manager = "cgroupfs"',
      'events_logger = "file"',
      `tmp_dir = "${tmpdir}"`,
      'runtime = "runc"',
      '',
      // Network config and locks in the temp dir, not /etc/containers/networks or /etc/cni/net.d.
      '[network]',
      `network_config_dir = "${path.join(dir, 'net')}"`,
      '',
    ].join('\n'),
  );
  await fs.writeFile(storageConf, ['[storage]', 'driver = "overlay"', `graphroot = "${root}"`, `runroot = "${runroot}"`, ''].join('\n'));
  await fs.writeFile(registriesConf, 'unqualified-search-registries = []\nshort-name-mode = "disabled"\n');
  await fs.writeFile(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  const env = {
    ...process.env,
    CONTAINERS_CONF: conf,
    CONTAINERS_STORAGE_CONF: storageConf,
    CONTAINERS_REGISTRIES_CONF: registriesConf,
  };
  const base = ['--root', root, '--runroot', runroot, '--tmpdir', tmpdir, '--storage-driver', 'overlay', '--cgroup-manager', 'cgroupfs', '--events-backend', 'file', '--runtime', 'runc'];
  const run = (args: string[], timeoutMs?: number) => {
    // pull takes --signature-policy: a temp policy instead of /etc/containers/policy.json.
    const extra = args[0] === 'pull' ? ['--signature-policy', policy] : [];
    return runCmd('podman', [...base, args[0], ...extra, ...args.slice(1)], { env, timeoutMs });
  };
  const version = (await mustRun('podman', ['--version'], { env })).stdout.trim().replace(/^podman version /, '');
  return {
    version,
    run,
    async stop() {
      // Containers left by a failed step: remove them so conmon and mounts go away.
      await run(['rm', '-af', '-t', '0'], 60_000).catch(() => undefined);
      await run(['system', 'prune', '-f'], 60_000).catch(() => undefined);
      await removeTree(dir);
    },
  };
}

// ---- runc ----------------------------------------------------------------------------------------

export interface RuncBundle {
  bundle: string;
  stateRoot: string;
  run(id: string): Promise<CmdResult>;
}

/** A ready runc bundle for `true`: umoci unpacks busybox, `runc spec` writes the default config. */
export async function runcBundle(dir: string, layoutRef: string): Promise<RuncBundle> {
  const bundle = path.join(dir, 'bundle');
  const stateRoot = path.join(dir, 'state');
  await fs.mkdir(stateRoot, { recursive: true });
  await mustRun('umoci', ['unpack', '--image', layoutRef, bundle]);
  await fs.rm(path.join(bundle, 'config.json'), { force: true });
  await mustRun('runc', ['spec', '--bundle', bundle]);
  const configFile = path.join(bundle, 'config.json');
  const config = JSON.parse(await fs.readFile(configFile, 'utf8'));
  config.process.terminal = false;
  config.process.args = ['true'];
  await fs.writeFile(configFile, JSON.stringify(config, null, 2));
  return {
    bundle,
    stateRoot,
    run: (id) => runCmd('runc', ['--root', stateRoot, 'run', '--bundle', bundle, id]),
  };
}
