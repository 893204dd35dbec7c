/** A container's names: `docker rename`, and dropping a legacy link name (`docker rm --link`). */
import { ConflictError, InvalidArgumentError } from '../contracts/errors';
import type { ContainerContext } from './context';
import { withoutLink } from './links';

export async function renameContainer(ctx: ContainerContext, ref: string, newName: string): Promise<void> {
  const rec = ctx.store.get(ref);
  if (!newName) throw new InvalidArgumentError('Neither old nor new names may be empty');
  rec.Name = ctx.store.reserveName(newName, rec.Id);
  await ctx.store.save(rec);
  ctx.events.emit('rename', rec.Id);
}

/** DELETE /containers/{me}/{alias}?link=1: drop the link, keep both containers. */
export async function removeLink(ctx: ContainerContext, linkName: string): Promise<void> {
  const name = linkName.startsWith('/') ? linkName : `/${linkName}`;
  if (name.lastIndexOf('/') === 0) throw new ConflictError('Conflict, cannot remove the default link name of the container');
  const parent = ctx.store.get(name.slice(0, name.lastIndexOf('/')));
  parent.HostConfig.Links = withoutLink(parent, name);
  await ctx.store.save(parent);
}
