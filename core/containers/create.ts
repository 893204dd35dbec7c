/**
 * Creating a container: the request merged with the image's config the way dockerd merges them,
 * host config checked, networks and volumes planned before anything exists, then the writable
 * layer, the record, the network and volume attachments; a failure on the way takes back what
 * was made.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { BerthError, InvalidArgumentError } from '../contracts/errors';
import type { ImageRecord } from '../images/store';
import type { EndpointRequest } from '../networks/manager';
import { type ContainerMount, parseBind, parseMounts } from '../volumes/mounts';
import type { ContainerContext } from './context';
import { mergeEnv } from './env';
import { type HealthConfig, mergeHealthcheck } from './health';
import { validateHostConfig } from './host-config';
import { normalizeLinks } from './links';
import { checkLogConfig, resolveLogConfig } from './log-config';
import { type ContainerConfigSpec, type ContainerRecord, type HostConfigSpec, initialState } from './record';

export interface CreateRequest extends ContainerConfigSpec {
  HostConfig?: HostConfigSpec;
  NetworkingConfig?: { EndpointsConfig?: Record<string, EndpointRequest> | null };
  /** Config.MacAddress (API < 1.44): the MAC of the container's interface on its first network. */
  MacAddress?: string;
}

export async function createContainer(ctx: ContainerContext, req: CreateRequest, name?: string): Promise<{ Id: string; Warnings: string[] }> {
  const id = ctx.store.newId();
  try {
    return await createNow(ctx, id, req, name);
  } finally {
    // Saved, the record holds the name; failed, the name is free again.
    ctx.store.releaseName(id);
  }
}

async function createNow(ctx: ContainerContext, id: string, req: CreateRequest, name?: string): Promise<{ Id: string; Warnings: string[] }> {
  if (!req || typeof req !== 'object') throw new InvalidArgumentError('config cannot be empty in order to create a container');
  if (!req.Image) throw new InvalidArgumentError('Config.Image is required');
  const image = ctx.deps.images.store.resolve(req.Image);
  const imageConfig = (await ctx.deps.images.config(image)).config ?? {};
  const storage = ctx.storage();
  await ensureUnpacked(ctx, image);

  const recName = ctx.store.reserveName(name, id);
  const runtime = ctx.deps.runtime()?.name ?? '';
  const hostConfig: HostConfigSpec = { NetworkMode: 'default', ...(req.HostConfig ?? {}) };
  // `container:<name or id prefix>` modes are stored with the full id, as dockerd does.
  for (const key of ['NetworkMode', 'IpcMode', 'UTSMode'] as const) {
    const mode = hostConfig[key];
    if (typeof mode === 'string' && mode.startsWith('container:')) hostConfig[key] = `container:${ctx.store.get(mode.slice('container:'.length)).Id}`;
  }
  // docker-py's create_container(runtime=...) sends Runtime beside the Config, not in HostConfig.
  const configRuntime = (req as { Runtime?: unknown }).Runtime;
  if (!hostConfig.Runtime && typeof configRuntime === 'string') hostConfig.Runtime = configRuntime;
  validateHostConfig(hostConfig, { networks: !!ctx.deps.networks, volumes: !!ctx.deps.volumes, runtime });
  hostConfig.Runtime ||= runtime;
  if (hostConfig.Links) hostConfig.Links = normalizeLinks(hostConfig.Links as string[], recName, (n) => !!ctx.store.find(n));
  hostConfig.LogConfig = resolveLogConfig(hostConfig.LogConfig, ctx.daemonLogConfig());
  checkLogConfig(hostConfig.LogConfig, (key, msg) => new InvalidArgumentError(key === 'Type' ? msg : `log-opt ${key}: ${msg}`));
  // Networks and volumes are checked before anything exists: a port conflict leaves no container.
  const exposed = Object.keys({ ...(imageConfig.ExposedPorts ?? {}), ...(req.ExposedPorts ?? {}) });
  const netConfig = await ctx.deps.networks?.configure(id, hostConfig, req.NetworkingConfig?.EndpointsConfig ?? undefined, exposed, req.MacAddress || undefined);
  // Config.Volumes of the request (`-v /path` as docker-py sends it) add to the image's VOLUMEs.
  const volumeTargets = Object.keys({ ...(imageConfig.Volumes ?? {}), ...(req.Volumes ?? {}) });
  const volumeMounts = ctx.deps.volumes ? withVolumesFrom(ctx, hostConfig, parseMounts(hostConfig, volumeTargets)) : [];
  const entrypoint = req.Entrypoint !== undefined && req.Entrypoint !== null ? req.Entrypoint : (imageConfig.Entrypoint ?? []);
  const cmd = req.Cmd?.length ? req.Cmd : req.Entrypoint !== undefined && req.Entrypoint !== null ? [] : (imageConfig.Cmd ?? []);
  const argv = [...(entrypoint ?? []), ...(cmd ?? [])];
  if (!argv.length) throw new InvalidArgumentError('no command specified');
  const configEnv = mergeEnv(imageConfig.Env ?? [], req.Env ?? [], { keepUnset: true });
  const env = configEnv.filter((e) => e.includes('='));
  const config: ContainerConfigSpec = {
    ...req,
    Hostname: req.Hostname || (hostConfig.UTSMode === 'host' ? os.hostname() : id.slice(0, 12)),
    Env: configEnv,
    Cmd: cmd,
    Entrypoint: entrypoint?.length ? entrypoint : null,
    Image: req.Image,
    WorkingDir: req.WorkingDir || imageConfig.WorkingDir || '',
    // An empty string (docker run without -u) means the image's user, as in Docker.
    User: req.User || imageConfig.User || '',
    Labels: { ...(imageConfig.Labels ?? {}), ...(req.Labels ?? {}) },
    StopSignal: req.StopSignal ?? imageConfig.StopSignal,
    Healthcheck: mergeHealthcheck(imageConfig.Healthcheck as HealthConfig | undefined, req.Healthcheck),
  };
  if (!config.Healthcheck) delete config.Healthcheck;
  if (volumeTargets.length) config.Volumes = Object.fromEntries(volumeTargets.map((v) => [v, {}]));
  delete (config as { Runtime?: unknown }).Runtime;
  delete (config as { HostConfig?: unknown }).HostConfig;
  delete (config as { NetworkingConfig?: unknown }).NetworkingConfig;
  if (exposed.length) config.ExposedPorts = Object.fromEntries(exposed.map((p) => [p, {}]));
  const top = image.chainIds[image.chainIds.length - 1] ?? null;
  const rec: ContainerRecord = {
    Id: id,
    Name: recName,
    Created: new Date().toISOString(),
    Image: image.id,
    TopLayer: top,
    Path: argv[0],
    Args: argv.slice(1),
    Config: config,
    HostConfig: hostConfig,
    State: initialState(),
    RestartCount: 0,
    Driver: storage.name,
    Process: { env, cwd: config.WorkingDir || '/', user: config.User || '' },
  };
  await storage.create(id, top);
  try {
    await ctx.store.save(rec);
    if (netConfig) await ctx.deps.networks!.save(netConfig);
    if (ctx.deps.volumes) await ctx.deps.volumes.attach(id, volumeMounts, (hostConfig.VolumeDriver as string | undefined) || undefined);
  } catch (err) {
    await ctx.deps.networks?.forget(id).catch(() => undefined);
    await ctx.deps.volumes?.detach(id, true).catch(() => undefined);
    await ctx.store.delete(id).catch(() => undefined);
    await storage.remove(id).catch(() => undefined);
    throw err;
  }
  ctx.events.emit('create', id);
  return { Id: id, Warnings: [] };
}

/**
 * HostConfig.VolumesFrom (`container[:ro|:rw]`): the new container also gets every volume and
 * bind of those containers, at the same paths, read-only if the source had it so or `:ro` says
 * so; its own mounts win where a path is taken, as in dockerd.
 */
function withVolumesFrom(ctx: ContainerContext, hostConfig: HostConfigSpec, own: { binds: string[]; mounts: ContainerMount[] }): ContainerMount[] {
  const from = hostConfig.VolumesFrom as unknown;
  if (from === undefined || from === null) return own.mounts;
  if (!Array.isArray(from) || from.some((f) => typeof f !== 'string')) throw new InvalidArgumentError('HostConfig.VolumesFrom: expected a list of "container[:ro|:rw]"');
  const taken = new Set([...own.binds.map((b) => path.posix.normalize(b.split(':')[1]).replace(/\/$/, '')), ...own.mounts.map((m) => m.Target)]);
  const mounts = [...own.mounts];
  for (const entry of from as string[]) {
    const [ref, mode = '', extra] = entry.split(':');
    if (extra !== undefined || !['', 'ro', 'rw'].includes(mode)) throw new InvalidArgumentError(`HostConfig.VolumesFrom: invalid mode in ${JSON.stringify(entry)} (ro or rw)`);
    const source = ctx.store.get(ref);
    const binds = parseMounts({ Binds: source.HostConfig.Binds }, []).binds.map((b): ContainerMount => {
      const bind = parseBind(b);
      return { Type: 'bind', Source: bind.source, Target: bind.target, ReadOnly: bind.readOnly, Options: [bind.propagation] };
    });
    for (const m of [...binds, ...ctx.deps.volumes!.mountsOf(source.Id)]) {
      if (taken.has(m.Target)) continue;
      taken.add(m.Target);
      mounts.push({ ...m, ReadOnly: mode ? mode === 'ro' : m.ReadOnly });
    }
  }
  return mounts;
}

/** Layers are unpacked at pull; after a storage driver switch they are unpacked again here. */
async function ensureUnpacked(ctx: ContainerContext, image: ImageRecord): Promise<void> {
  const storage = ctx.storage();
  const missing = [];
  for (const c of image.chainIds) if (!(await storage.hasLayer(c))) missing.push(c);
  if (!missing.length) return;
  const unpacker = ctx.deps.unpacker();
  if (!unpacker) throw new BerthError('no layer unpacker configured');
  await unpacker.unpack(
    image.layers.map((blob, i) => ({ blob, diffId: image.diffIds[i], chainId: image.chainIds[i], parent: i ? image.chainIds[i - 1] : null })),
    () => undefined,
  );
}
