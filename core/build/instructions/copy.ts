/**
 * COPY and ADD: the sources (the context, an earlier stage or an image) are written into the
 * mounted rootfs of a throwaway writable layer and its diff is committed. Writing into a real
 * rootfs rather than crafting a tar lets the destination be resolved the way it will be seen at
 * run time (an existing directory, a symlinked parent, `--chown` names from the image's own
 * /etc/passwd), always inside the rootfs (core/layers/resolve.ts).
 */
import { createReadStream } from 'node:fs';
import * as path from 'node:path';
import zlib from 'node:zlib';
import type { ImageRecord } from '../../images/store';
import { resolveUser } from '../../containers/user';
import { archiveKind, extractTar } from '../archive';
import type { Instruction, Stage } from '../dockerfile';
import { BuildError, CopyError } from '../errors';
import { type Owner, isDirInRoot, mkdirInRoot, writeItem } from '../rootfs';
import { type CopySource, type SourceTree, hashSources, resolveSources } from '../sources';
import { type StageState, type StepContext, type StepResult, topChain } from '../step';
import { type Lookup, processWord, processWords } from '../words';

export async function copyStep(ctx: StepContext, state: StageState, ins: Instruction, stage: Stage, lookup: Lookup): Promise<void> {
  const escape = ctx.dockerfile.escape;
  const words = ins.json ? ins.json.map((w) => processWord(w, lookup, escape, ins.name)) : processWords(ins.args, lookup, escape, ins.name);
  const dest = words[words.length - 1];
  const sources = words.slice(0, -1);
  const flags = Object.fromEntries(Object.entries(ins.flags).map(([k, v]) => [k, processWord(v, lookup, escape, ins.name)]));
  for (const f of ['link', 'parents', 'exclude', 'checksum', 'keep-git-dir']) if (flags[f] !== undefined) throw new BuildError(`${ins.name} --${f} needs BuildKit; berth's builder is the classic one`);
  if (ins.name === 'ADD') {
    const remote = sources.find((s) => /^[a-z][a-z0-9+.-]*:\/\//i.test(s) || /^git@/.test(s));
    if (remote) throw new BuildError(`ADD ${remote}: remote sources are not supported: berth builds without network access; download the file into the build context and COPY it`);
  }
  const chmod = flags.chmod !== undefined ? parseChmod(flags.chmod, ins.name) : undefined;
  const workdir = state.config.config?.WorkingDir || '/';
  const destAbs = path.posix.resolve('/', workdir, dest);
  const destIsDir = dest.endsWith('/') || dest === '.' || dest.endsWith('/.');
  const text = `${ins.name} ${Object.entries(flags)
    .map(([k, v]) => `--${k}=${v} `)
    .join('')}${sources.join(' ')} ${destAbs}${destIsDir ? '/' : ''}`;

  // Where the sources come from: the context, an earlier stage, or an image.
  let fromImage: ImageRecord | undefined;
  if (flags.from !== undefined) {
    const want = flags.from.toLowerCase();
    const idx = /^\d+$/.test(want) ? Number(want) : ctx.dockerfile.stages.findIndex((s) => s.name === want);
    if (idx >= 0 && idx >= stage.index) throw new BuildError(`${ins.name} --from=${flags.from}: a stage can only copy from stages before it`);
    if (idx >= 0 && ctx.stageResults[idx]) {
      const s = ctx.stageResults[idx];
      fromImage = ctx.deps.images.store.get(await ctx.materialize(s));
    } else if (/^\d+$/.test(want)) throw new BuildError(`${ins.name} --from=${flags.from}: no stage with index ${want}`);
    else fromImage = await ctx.image(flags.from);
    if (!fromImage) throw new BuildError(`${ins.name} --from=${flags.from}: the image of that stage is gone`);
  }

  const run = async (tree: SourceTree): Promise<StepResult> => {
    const resolved = await resolveSources(tree, sources, ins.name);
    return copyInto(ctx, state, ins, resolved, destAbs, destIsDir, flags.chown, chmod, tree);
  };

  if (fromImage) {
    const from = fromImage;
    const top = from.chainIds[from.chainIds.length - 1] ?? null;
    // The source image's ID pins its content: no need to hash the files for the key.
    await ctx.commit(state, [text, `from:${from.id}`], async () => {
      const source = await ctx.layers.withScratchLayer(top, (rootfs) => run({ root: rootfs, confined: false, what: `stage or image ${flags.from}` }));
      await source.discard();
      return source.value;
    });
    return;
  }
  const resolved = await resolveSources(ctx.contextTree, sources, ins.name);
  const hash = await hashSources(resolved);
  await ctx.commit(state, [text, hash], () => copyInto(ctx, state, ins, resolved, destAbs, destIsDir, flags.chown, chmod, ctx.contextTree));
}

/**
 * Write resolved sources into a new layer over the stage's image. Sources read from a mounted
 * image are copied while it is mounted, so `copyInto` runs inside that mount's callback.
 */
async function copyInto(
  ctx: StepContext,
  state: StageState,
  ins: Instruction,
  sources: CopySource[],
  destAbs: string,
  destIsDir: boolean,
  chown: string | undefined,
  chmod: number | undefined,
  tree: SourceTree,
): Promise<StepResult> {
  if (sources.length > 1 && !destIsDir) throw new CopyError(`When using ${ins.name} with more than one source file, the destination must be a directory and end with a /`);
  const destComps = destAbs.split('/').filter(Boolean);
  const scratch = await ctx.layers.withScratchLayer(topChain(state), async (rootfs) => {
    const owner = chown ? await resolveChown(rootfs, chown) : undefined;
    const dirOwner = owner ?? { uid: 0, gid: 0 };
    for (const src of sources) {
      if (src.isDir) {
        const base = await mkdirInRoot(rootfs, destComps, dirOwner);
        for (const item of src.items) await writeItem(rootfs, [...base, ...item.rel.split('/')], item, { owner, mode: chmod });
        continue;
      }
      const item = src.items[0];
      const kind = ins.name === 'ADD' && tree.confined ? await archiveKind(item.host) : undefined;
      if (kind) {
        // ADD of a local archive: its contents land in the destination directory, owners kept.
        const base = await mkdirInRoot(rootfs, destComps, dirOwner);
        const stream = createReadStream(item.host);
        await extractTar(kind === 'gzip' ? stream.pipe(zlib.createGunzip()) : stream, rootfs, base, { chown: true, what: `ADD ${src.shown}` });
        continue;
      }
      const intoDir = destIsDir || (await isDirInRoot(rootfs, destComps));
      const target = intoDir ? [...destComps, src.name] : destComps;
      if (!target.length) throw new CopyError(`${ins.name} failed: cannot copy ${src.shown} over /`);
      await writeItem(rootfs, target, item, { owner, mode: chmod });
    }
  });
  const layer = await scratch.diff();
  const kind = sources.length === 1 ? (sources[0].isDir ? 'dir' : 'file') : 'multi';
  const hash = layer.diffId.replace(/^sha256:/, '');
  return {
    containerConfig: structuredClone(state.config.config ?? {}),
    createdBy: `/bin/sh -c #(nop) ${ins.name} ${kind}:${hash} in ${destAbs}${destIsDir && destAbs !== '/' ? '/' : ''} `,
    layer,
  };
}

/** `--chown=user[:group]`: names from the image's own passwd/group; a lone user means gid = uid. */
async function resolveChown(rootfs: string, spec: string): Promise<Owner> {
  const [userPart, groupPart] = spec.split(':', 2);
  if (!userPart) throw new CopyError(`--chown=${spec}: a user is required`);
  try {
    const user = await resolveUser(rootfs, userPart);
    if (groupPart === undefined || groupPart === '') return { uid: user.uid, gid: /^\d+$/.test(userPart) ? user.uid : user.gid };
    const group = await resolveUser(rootfs, `0:${groupPart}`);
    return { uid: user.uid, gid: group.gid };
  } catch (err) {
    throw new CopyError(`--chown=${spec}: ${(err as Error).message}`);
  }
}

function parseChmod(spec: string, what: string): number {
  if (!/^[0-7]{3,4}$/.test(spec)) throw new BuildError(`${what} --chmod=${spec}: expected an octal mode such as 755`);
  return parseInt(spec, 8);
}
