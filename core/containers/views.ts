/** Docker's JSON shapes of a container: a row of `docker ps` and `docker inspect`. */
import { humanDuration } from '../util/format';
import { parseBind } from '../volumes/mounts';
import type { ContainerContext } from './context';
import { healthSuffix } from './health';
import { namesOfAll } from './links';
import type { ContainerRecord } from './record';

/** One row of GET /containers/json; `names` from namesOfAll when listing many. */
export function containerSummary(ctx: ContainerContext, rec: ContainerRecord, names = namesOfAll(ctx.store.list())) {
  return {
    Id: rec.Id,
    Names: names(rec),
    Image: imageAsGiven(ctx, rec),
    ImageID: rec.Image,
    Command: [rec.Path, ...rec.Args].join(' '),
    Created: Math.floor(Date.parse(rec.Created) / 1000),
    Ports: ctx.deps.networks?.summaryPorts(rec.Id) ?? [],
    Labels: rec.Config.Labels ?? {},
    State: rec.State.Status,
    Status: statusText(rec),
    HostConfig: { NetworkMode: rec.HostConfig.NetworkMode ?? 'default' },
    NetworkSettings: { Networks: ctx.deps.networks?.settings(rec.Id).Networks ?? {} },
    Mounts: ctx.deps.volumes?.inspectMounts(rec.Id) ?? [],
  };
}

/** dockerd's rule: the image as the user named it, or its ID once that name means another image. */
function imageAsGiven(ctx: ContainerContext, rec: ContainerRecord): string {
  return ctx.deps.images.store.find(rec.Config.Image)?.id === rec.Image ? rec.Config.Image : rec.Image;
}

/** GET /containers/{id}/json. */
export function inspectContainer(ctx: ContainerContext, ref: string) {
  const rec = ctx.store.get(ref);
  return {
    Id: rec.Id,
    Created: rec.Created,
    Path: rec.Path,
    Args: rec.Args,
    State: rec.State,
    Image: rec.Image,
    ResolvConfPath: `${ctx.store.stateDir(rec.Id)}/resolv.conf`,
    HostnamePath: `${ctx.store.stateDir(rec.Id)}/hostname`,
    HostsPath: `${ctx.store.stateDir(rec.Id)}/hosts`,
    LogPath: ctx.deps.runtime()?.logPath(rec.Id, ctx.store.stateDir(rec.Id)) ?? '',
    Name: rec.Name,
    RestartCount: rec.RestartCount,
    Driver: rec.Driver,
    Platform: 'linux',
    MountLabel: '',
    ProcessLabel: '',
    AppArmorProfile: '',
    HostConfig: { ...rec.HostConfig, LogConfig: ctx.logConfigOf(rec) },
    GraphDriver: { Name: rec.Driver, Data: null },
    Mounts: (rec.HostConfig.Binds ?? [])
      .filter((b) => /^\/[^:]*:\//.test(b))
      .map((b) => {
        const { source, target, readOnly, propagation } = parseBind(b);
        return { Type: 'bind', Source: source, Destination: target, Mode: b.split(':')[2] ?? '', RW: !readOnly, Propagation: propagation };
      })
      .concat(ctx.deps.volumes?.inspectMounts(rec.Id) ?? []),
    Config: rec.Config,
    NetworkSettings: ctx.deps.networks?.settings(rec.Id) ?? { Networks: {}, Ports: {}, IPAddress: '', Gateway: '', MacAddress: '' },
  };
}

function statusText(rec: ContainerRecord): string {
  const since = (t: string) => humanDuration(Date.now() - Date.parse(t));
  switch (rec.State.Status) {
    case 'running':
    case 'paused':
      return `Up ${since(rec.State.StartedAt)}${rec.State.Paused ? ' (Paused)' : healthSuffix(rec.State.Health)}`;
    case 'exited':
      return `Exited (${rec.State.ExitCode}) ${since(rec.State.FinishedAt)} ago`;
    case 'created':
      return 'Created';
    default:
      return rec.State.Status;
  }
}
