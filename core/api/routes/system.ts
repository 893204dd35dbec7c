import * as os from 'node:os';
import type { Engine } from '../../kernel/engine';
import { ENGINE_VERSION } from '../../kernel/engine';
import { BerthError } from '../../contracts/errors';
import { parseReference } from '../../images/reference';
import { diskUsage, pruneContainers, pruneImages } from '../../kernel/disk-usage';
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
    const containers = engine.containers.list();
    const cgroups = engine.plugins.get<{ info?(): { version: string; driver: string; controllers: string[] } }>('isolator.cgroups')?.info?.();
    sendJson(res, 200, {
      // Docker reports a hybrid host as cgroup v1; berth's own field says hybrid.
      CgroupVersion: cgroups ? (cgroups.version === '2' ? '2' : '1') : '',
      CgroupDriver: cgroups?.driver ?? 'none',
      BerthCgroups: cgroups ?? null,
      ID: '',
      Name: os.hostname(),
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
      Runtimes: { [engine.config.runtime]: { path: engine.config.runtime } },
      DefaultRuntime: engine.config.runtime,
      BerthCri: engine.config.cri,
      SecurityOptions: [],
      Warnings: [],
    });
  });

  // docker login / berth login: the daemon checks the credentials against the registry.
  router.add('POST', '/auth', async (req, res) => {
    const body = checkBody<{ username?: string; password?: string; serveraddress?: string; identitytoken?: string }>(await readJsonBody(req), AUTH_CONFIG, 'auth config') ?? {};
    const host = (body.serveraddress || 'docker.io').replace(/^https?:\/\//, '').replace(/\/(v1|v2)?\/?$/, '');
    const ref = parseReference(`${host === 'index.docker.io' ? 'docker.io' : host}/login-check`);
    const registry = engine.images.registryFor(ref);
    if (!registry.login) throw new BerthError(`the registry plugin for ${host} does not support login`, 501);
    await registry.login(ref.domain, { username: body.username, password: body.password, identitytoken: body.identitytoken }, { signal: req.signal });
    sendJson(res, 200, { Status: 'Login Succeeded', IdentityToken: '' });
  });

  router.add('GET', '/system/df', async (_req, res) => sendJson(res, 200, await diskUsage(engine)));
  router.add('POST', '/containers/prune', async (_req, res) => sendJson(res, 200, await pruneContainers(engine)));
  router.add('POST', '/images/prune', async (req, res) => {
    const dangling = filtersParam(req.query).dangling?.[0];
    sendJson(res, 200, await pruneImages(engine, dangling === 'false' || dangling === '0'));
  });

  router.add('GET', '/berth/plugins', (_req, res) => sendJson(res, 200, engine.plugins.infos));

  router.add('POST', '/berth/system/check', async (_req, res) => sendJson(res, 200, await engine.images.check()));
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

function osName(): string {
  try {
    const text = require('node:fs').readFileSync('/etc/os-release', 'utf8') as string;
    return /^PRETTY_NAME="?([^"\n]*)"?/m.exec(text)?.[1] ?? 'Linux';
  } catch {
    return 'Linux';
  }
}
