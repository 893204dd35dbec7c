import * as os from 'node:os';
import type { Engine } from '../../kernel/engine';
import { ENGINE_VERSION } from '../../kernel/engine';
import { BerthError, InvalidArgumentError, NotImplementedError } from '../../contracts/errors';
import { createHash } from 'node:crypto';
import { parseManifest } from '../../images/manifest';
import { formatReference, parseReference } from '../../images/reference';
import { registryAuth } from './images';
import { runtimeNames } from '../../containers/host-config';
import { diskUsage, pruneContainers, pruneImages } from '../../kernel/disk-usage';
import { listQuarantined } from '../../layers/util';
import { API_VERSION, MIN_API_VERSION, type Router, filtersParam, readJsonBody, sendJson } from '../router';
import { AUTH_CONFIG, checkBody } from '../validate';

export function systemRoutes(router: Router, engine: Engine): void {
  router.add('GET', '/_ping', (req, res) => {
    res.writeHead(200, {
      'Content-Type': 'text/plain; charset=utf-8',
      'API-Version': API_VERSION,
      'Cache-Control': 'no-cache, no-store, must-revalidate',
      'Docker-Experimental': 'false',
      OSType: 'linux',
      Pragma: 'no-cache',
    });
    res.end(req.method === 'HEAD' ? undefined : 'OK');
  });

  router.add('GET', '/version', (_req, res) => {
    // `docker version` prints the Server section from the Engine component's Details.
    const details = {
      ApiVersion: API_VERSION,
      MinAPIVersion: MIN_API_VERSION,
      GitCommit: GIT_COMMIT,
      GoVersion: `node ${process.version}`,
      Os: 'linux',
      Arch: goArch(),
      KernelVersion: os.release(),
      Experimental: 'false',
      BuildTime: BUILD_TIME,
    };
    sendJson(res, 200, {
      Platform: { Name: 'berth' },
      Components: [{ Name: 'Engine', Version: ENGINE_VERSION, Details: details }],
      Version: ENGINE_VERSION,
      ...details,
      Experimental: false,
    });
  });

  router.add('GET', '/info', async (_req, res) => {
    const storage = engine.storage();
    const runtime = engine.runtime()?.name ?? engine.config.runtime;
    const containers = engine.containers.list();
    const isolatorInfos = engine.isolators().map((iso) => iso.info?.() ?? {});
    const cgroups = isolatorInfos.find((info) => info.cgroups)?.cgroups;
    sendJson(res, 200, {
      // Docker reports a hybrid host as cgroup v1; berth's own field says hybrid.
      CgroupVersion: cgroups ? (cgroups.version === '2' ? '2' : '1') : '',
      CgroupDriver: cgroups?.driver ?? 'none',
      BerthCgroups: cgroups ?? null,
      ID: engineId(engine.config.root),
      Name: os.hostname(),
      Debug: process.env.BERTH_LOG_LEVEL === 'debug',
      ExperimentalBuild: false,
      // berth's features, as dockerd reports the kernel features it found.
      MemoryLimit: !!cgroups?.controllers.includes('memory'),
      SwapLimit: !!cgroups?.controllers.includes('memory'),
      CpuCfsPeriod: !!cgroups?.controllers.includes('cpu'),
      CpuCfsQuota: !!cgroups?.controllers.includes('cpu'),
      CPUShares: !!cgroups?.controllers.includes('cpu'),
      CPUSet: !!cgroups?.controllers.includes('cpuset'),
      PidsLimit: !!cgroups?.controllers.includes('pids'),
      KernelMemory: false,
      KernelMemoryTCP: false,
      OomKillDisable: false,
      IPv4Forwarding: readText('/proc/sys/net/ipv4/ip_forward').trim() === '1',
      BridgeNfIptables: readText('/proc/sys/net/bridge/bridge-nf-call-iptables').trim() === '1',
      BridgeNfIp6tables: readText('/proc/sys/net/bridge/bridge-nf-call-ip6tables').trim() === '1',
      GenericResources: null,
      NFd: openFds(),
      NGoroutines: 0,
      SystemTime: new Date().toISOString(),
      LoggingDriver: 'json-file',
      NEventsListener: engine.events.listenerCount('event'),
      OSVersion: osRelease('VERSION_ID') ?? '',
      HttpProxy: process.env.HTTP_PROXY ?? process.env.http_proxy ?? '',
      HttpsProxy: process.env.HTTPS_PROXY ?? process.env.https_proxy ?? '',
      NoProxy: process.env.NO_PROXY ?? process.env.no_proxy ?? '',
      Labels: [],
      LiveRestoreEnabled: true,
      Isolation: '',
      InitBinary: 'berth-init',
      ContainerdCommit: { ID: '', Expected: '' },
      RuncCommit: { ID: '', Expected: '' },
      InitCommit: { ID: '', Expected: '' },
      DefaultAddressPools: [],
      ServerVersion: ENGINE_VERSION,
      Driver: storage?.name ?? engine.config.storage.driver,
      DriverStatus: storage ? [] : [['Status', engine.plugins.whyMissing('storage')]],
      Images: engine.imageStore.list().length,
      Containers: containers.length,
      ContainersRunning: containers.filter((c) => c.State.Running && !c.State.Paused).length,
      ContainersPaused: containers.filter((c) => c.State.Paused).length,
      ContainersStopped: containers.filter((c) => !c.State.Running).length,
      DockerRootDir: engine.config.root,
      OperatingSystem: osName(),
      OSType: 'linux',
      Architecture: os.machine(),
      KernelVersion: os.release(),
      NCPU: os.cpus().length,
      MemTotal: os.totalmem(),
      IndexServerAddress: 'https://index.docker.io/v1/',
      RegistryConfig: {
        IndexConfigs: Object.fromEntries(
          Object.entries(engine.config.registries).map(([host, c]) => [host, { Name: host, Mirrors: c.mirrors ?? [], Secure: !c.insecure, Official: host === 'docker.io' }]),
        ),
        InsecureRegistryCIDRs: ['127.0.0.0/8', '::1/128'],
      },
      Plugins: { Volume: [], Network: [], Authorization: null, Log: ['json-file'] },
      // Without LocalNodeState the docker CLI prints an empty Swarm block instead of "inactive".
      Swarm: { LocalNodeState: 'inactive', NodeID: '', NodeAddr: '', ControlAvailable: false, Error: '', RemoteManagers: null },
      BerthPlugins: engine.plugins.infos,
      Runtimes: Object.fromEntries(runtimeNames(runtime).map((name) => [name, { path: `berth runtime.${runtime}` }])),
      DefaultRuntime: runtime,
      // What the active isolators apply (e.g. `name=seccomp,profile=builtin`), as dockerd lists them.
      SecurityOptions: dockerdOrder(isolatorInfos.flatMap((info) => info.securityOptions ?? [])),
      BerthCri: engine.config.cri,
      Warnings: [],
    });
  });

  // docker login / berth login: the daemon checks the credentials against the registry.
  router.add('POST', '/auth', async (req, res) => {
    const body = checkBody<{ username?: string; password?: string; serveraddress?: string; identitytoken?: string }>(await readJsonBody(req), AUTH_CONFIG, 'auth config') ?? {};
    const host = (body.serveraddress || 'docker.io').replace(/^https?:\/\//, '').replace(/\/(v1|v2)?\/?$/, '');
    const ref = parseReference(`${host === 'index.docker.io' ? 'docker.io' : host}/login-check`);
    const registry = engine.images.registryFor(ref);
    if (!registry.login) throw new NotImplementedError(`the registry plugin for ${host} does not support login`);
    await registry.login(ref.domain, { username: body.username, password: body.password, identitytoken: body.identitytoken }, { signal: req.signal });
    sendJson(res, 200, { Status: 'Login Succeeded', IdentityToken: '' });
  });

  router.add('GET', '/system/df', async (_req, res) => sendJson(res, 200, await diskUsage(engine)));
  router.add('POST', '/containers/prune', async (_req, res) => sendJson(res, 200, await pruneContainers(engine)));
  router.add('POST', '/images/prune', async (req, res) => {
    const dangling = filtersParam(req.query).dangling?.[0];
    sendJson(res, 200, await pruneImages(engine, dangling === 'false' || dangling === '0'));
  });

  // Docker's managed plugins (`docker plugin install`): berth has none; its own are at /berth/plugins.
  router.add('GET', '/plugins', (_req, res) => sendJson(res, 200, []));

  // What installing a plugin would grant it, read from its config in the registry. A plugin that
  // cannot be fetched has none: dockerd 20.10 answers [] then too (docker-py's suite relies on it).
  router.add('GET', '/plugins/privileges', async (req, res) => {
    const remote = req.query.get('remote');
    if (!remote) throw new InvalidArgumentError('remote: the plugin reference is required');
    const ref = parseReference(remote);
    let config: PluginConfig;
    try {
      const registry = engine.images.registryFor(ref);
      const opts = { signal: req.signal, credentials: registryAuth(req) };
      const what = formatReference(ref);
      const { bytes, mediaType } = await registry.getManifest(ref, ref.digest ?? ref.tag ?? 'latest', opts);
      const manifest = parseManifest(bytes, mediaType, what);
      if (manifest.kind !== 'manifest') throw new InvalidArgumentError(`${what} is an index, not a plugin`);
      config = JSON.parse((await readAll(await registry.getBlob(ref, manifest.config, opts), MAX_CONFIG_BYTES, what)).toString('utf8'));
    } catch (err) {
      engine.log.warn('plugin privileges: cannot read the plugin config', { remote, error: (err as Error).message });
      return sendJson(res, 200, []);
    }
    sendJson(res, 200, pluginPrivileges(config));
  });

  // berth's build cache holds no data of its own (each step is an image, pruned with the images).
  router.add('POST', '/build/prune', (_req, res) => sendJson(res, 200, { CachesDeleted: [], SpaceReclaimed: 0 }));

  // What a pull of NAME would get: the registry's descriptor for it and the platforms it offers.
  router.add('GET', '/distribution/{name*}/json', async (req, res) => {
    const ref = parseReference(req.params.name);
    const what = formatReference(ref);
    const registry = engine.images.registryFor(ref);
    const opts = { signal: req.signal, credentials: registryAuth(req) };
    const { bytes, mediaType } = await registry.getManifest(ref, ref.digest ?? ref.tag ?? 'latest', opts);
    const manifest = parseManifest(bytes, mediaType, what);
    const descriptor = { mediaType: manifest.mediaType, digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`, size: bytes.length };
    let platforms;
    if (manifest.kind === 'index') {
      platforms = manifest.manifests.map((m) => m.platform).filter((p) => p && p.os !== 'unknown');
    } else {
      const config = JSON.parse((await readAll(await registry.getBlob(ref, manifest.config, opts), MAX_CONFIG_BYTES, what)).toString('utf8'));
      platforms = [{ architecture: config.architecture ?? '', os: config.os ?? '', ...(config.variant ? { variant: config.variant } : {}) }];
    }
    sendJson(res, 200, { Descriptor: descriptor, Platforms: platforms });
  });

  router.add('GET', '/berth/plugins', (_req, res) => sendJson(res, 200, engine.plugins.infos));

  // Trees a removal could not delete (see core/layers removeOrQuarantine) are reported with the store.
  router.add('POST', '/berth/system/check', async (_req, res) => sendJson(res, 200, { ...(await engine.images.check()), quarantined: await listQuarantined(engine.config.root) }));
}

/** Go's GOARCH names, which docker clients expect (amd64, arm64, ...). */
function goArch(): string {
  const arch = os.arch();
  return arch === 'x64' ? 'amd64' : arch === 'ia32' ? '386' : arch;
}

/** When this build of berthd was compiled (the mtime of this module), RFC 3339 like dockerd's. */
const BUILD_TIME = (() => {
  try {
    return require('node:fs').statSync(__filename).mtime.toISOString() as string;
  } catch {
    return '';
  }
})();
const GIT_COMMIT = 'unknown';

const MAX_CONFIG_BYTES = 4 * 1024 * 1024;

async function readAll(stream: NodeJS.ReadableStream, max: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    size += (chunk as Buffer).length;
    if (size > max) throw new BerthError(`image config of ${what} is larger than ${max} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** A stable engine ID per state root (dockerd keeps one in its root, as a key ID). */
function engineId(root: string): string {
  return createHash('sha256')
    .update(`berth:${root}`)
    .digest('hex')
    .slice(0, 48)
    .toUpperCase()
    .replace(/(.{4})(?!$)/g, '$1:');
}

/** A small host file's text, or '' when it cannot be read. */
function readText(file: string): string {
  try {
    return require('node:fs').readFileSync(file, 'utf8') as string;
  } catch {
    return '';
  }
}

function openFds(): number {
  try {
    return (require('node:fs').readdirSync('/proc/self/fd') as string[]).length;
  } catch {
    return 0;
  }
}

function osRelease(key: string): string | undefined {
  return new RegExp(`^${key}="?([^"\\n]*)"?`, 'm').exec(readText('/etc/os-release'))?.[1];
}

function osName(): string {
  return osRelease('PRETTY_NAME') ?? 'Linux';
}

/** The parts of a Docker plugin's config (application/vnd.docker.plugin.v1+json) that need a grant. */
interface PluginConfig {
  network?: { type?: string };
  ipchost?: boolean;
  pidhost?: boolean;
  mounts?: { source?: string | null }[] | null;
  linux?: { devices?: { path?: string | null }[] | null; allowAllDevices?: boolean; capabilities?: string[] | null };
}

/** moby's computePrivileges, in its order and wording. */
function pluginPrivileges(c: PluginConfig): { Name: string; Description: string; Value: string[] }[] {
  const out: { Name: string; Description: string; Value: string[] }[] = [];
  const type = c.network?.type ?? '';
  if (type && type !== 'null' && type !== 'bridge') out.push({ Name: 'network', Description: 'permissions to access a network', Value: [type] });
  if (c.ipchost) out.push({ Name: 'host ipc namespace', Description: 'allow access to host ipc namespace', Value: ['true'] });
  if (c.pidhost) out.push({ Name: 'host pid namespace', Description: 'allow access to host pid namespace', Value: ['true'] });
  for (const m of c.mounts ?? []) if (m.source) out.push({ Name: 'mount', Description: 'host path to mount', Value: [m.source] });
  for (const d of c.linux?.devices ?? []) if (d.path) out.push({ Name: 'device', Description: 'host device to access', Value: [d.path] });
  if (c.linux?.allowAllDevices) out.push({ Name: 'allow-all-devices', Description: "allow 'rwm' access to all devices", Value: ['true'] });
  if (c.linux?.capabilities?.length) out.push({ Name: 'capabilities', Description: 'list of additional capabilities required', Value: c.linux.capabilities });
  return out;
}

/** The order dockerd lists security options in (daemon/info.go); others go before cgroupns. */
const SECURITY_OPTION_ORDER = ['apparmor', 'seccomp', 'selinux', 'userns', 'rootless', 'cgroupns'];
function dockerdOrder(options: string[]): string[] {
  const rank = (opt: string) => {
    const i = SECURITY_OPTION_ORDER.indexOf(/name=([^,]+)/.exec(opt)?.[1] ?? '');
    return i >= 0 ? i : SECURITY_OPTION_ORDER.length - 1.5;
  };
  return [...options].sort((a, b) => rank(a) - rank(b));
}
