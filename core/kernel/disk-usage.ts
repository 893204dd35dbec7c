/**
 * `system df` and the prune commands: what images, containers and layers use on disk, with a
 * layer shared by several images counted once, and what removing unused things would reclaim.
 */
import type { Engine } from './engine';
import { familiarTags } from '../images/store';

export async function diskUsage(engine: Engine) {
  const storage = engine.storage();
  const usage = storage ? await storage.usage() : { layers: {}, containers: {} };
  const images = engine.imageStore.list();
  const containers = engine.containers.list();
  const layerSize = (chain: string, i: number, rec: (typeof images)[number]) => usage.layers[chain] ?? rec.layerSizes?.[i] ?? rec.layers[i]?.size ?? 0;
  const users = new Map<string, number>();
  for (const img of images) for (const c of new Set(img.chainIds)) users.set(c, (users.get(c) ?? 0) + 1);
  const allLayers = new Map<string, number>();
  // Build steps' parents are not listed (as `docker images` leaves them out); their layers count.
  const parents = new Set(images.map((r) => r.parent));
  const listed = (img: (typeof images)[number]) => engine.imageStore.tagsOf(img.id).length > 0 || !parents.has(img.id);
  const imageRows = images.map((img) => {
    let size = 0;
    let shared = 0;
    img.chainIds.forEach((c, i) => {
      const s = layerSize(c, i, img);
      allLayers.set(c, s);
      size += s;
      if ((users.get(c) ?? 0) > 1) shared += s;
    });
    return {
      Id: img.id,
      ParentId: '',
      RepoTags: familiarTags(engine.imageStore.tagsOf(img.id)),
      RepoDigests: img.repoDigests,
      Created: Math.floor(Date.parse(img.created ?? img.recorded) / 1000) || 0,
      Size: size,
      SharedSize: shared,
      VirtualSize: size,
      Labels: {},
      Containers: containers.filter((c) => c.Image === img.id).length,
      listed: listed(img),
    };
  });
  const summaries = engine.containers.summaries(containers);
  const containerRows = containers.map((c, i) => ({
    ...summaries[i],
    SizeRw: usage.containers[c.Id] ?? 0,
    SizeRootFs: (usage.containers[c.Id] ?? 0) + (imageRows.find((i) => i.Id === c.Image)?.Size ?? 0),
  }));
  return {
    LayersSize: [...allLayers.values()].reduce((a, b) => a + b, 0),
    Images: imageRows.filter((r) => r.listed).map(({ listed: _, ...row }) => row),
    Containers: containerRows,
    Volumes: await engine.volumes.usage(),
    BuildCache: [],
  };
}

/** Remove stopped containers (Docker's POST /containers/prune). */
export async function pruneContainers(engine: Engine) {
  const storage = engine.storage();
  const before = storage ? (await storage.usage()).containers : {};
  const deleted: string[] = [];
  for (const c of engine.containers.list()) {
    if (c.State.Running) continue;
    await engine.containers.remove(c.Id);
    deleted.push(c.Id);
  }
  return { ContainersDeleted: deleted, SpaceReclaimed: deleted.reduce((a, id) => a + (before[id] ?? 0), 0) };
}

/** Remove dangling images, or with `all` every image no container uses (POST /images/prune). */
export async function pruneImages(engine: Engine, all: boolean) {
  const { LayersSize: before } = await diskUsage(engine);
  const removed = [];
  const parents = new Set(engine.imageStore.list().map((r) => r.parent));
  for (const img of engine.imageStore.list()) {
    const tags = engine.imageStore.tagsOf(img.id);
    if (engine.containers.usersOf(img.id).length) continue;
    // Dangling: untagged and no other image built on it (intermediate build steps are kept).
    if (!all && (tags.length || parents.has(img.id))) continue;
    removed.push(...(await engine.images.remove(img.id, { force: true })));
  }
  const { LayersSize: after } = await diskUsage(engine);
  return { ImagesDeleted: removed, SpaceReclaimed: Math.max(0, before - after) };
}
