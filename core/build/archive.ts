/**
 * Tar archives: the build context the client sent, and ADD of a local archive. Hostile input:
 * every entry lands inside the extraction root, `..` is refused, symlinks are created but never
 * followed out.
 */
import { promises as fs, constants as fsc } from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import * as tar from 'tar-stream';
import { entryComponents } from '../layers/names';
import { resolveInRoot } from '../layers/resolve';
import { CopyError } from './errors';
import { mkdirInRoot } from './rootfs';

export interface ExtractOptions {
  /** Apply the entries' uid/gid (ADD keeps an archive's owners; the context does not need them). */
  chown: boolean;
  /** Names for messages: `the build context`, `archive app.tar`. */
  what: string;
}

/**
 * Extract a tar stream below `baseComponents` of `root`. Every entry is resolved inside `root`
 * (parents through symlinks only inside it), `..` escaping the base is refused, hardlink targets
 * must resolve inside the root too; devices and fifos are skipped.
 */
export async function extractTar(stream: Readable, root: string, baseComponents: string[], opts: ExtractOptions): Promise<number> {
  const extract = tar.extract();
  let count = 0;
  const done = (async () => {
    for await (const entry of extract) {
      const h = entry.header;
      try {
        let comps: string[];
        try {
          comps = entryComponents(h.name);
        } catch {
          throw new CopyError(`${opts.what}: entry ${JSON.stringify(h.name)} leads outside the extraction directory`);
        }
        if (!comps.length) {
          entry.resume();
          continue;
        }
        const full = [...baseComponents, ...comps];
        const parent = await mkdirInRoot(root, full.slice(0, -1), { uid: 0, gid: 0 });
        const target = path.join(root, ...parent, full[full.length - 1]);
        const existing = await fs.lstat(target).catch(() => undefined);
        const mode = (h.mode ?? 0o644) & 0o7777;
        if (h.type === 'directory') {
          if (!existing?.isDirectory()) {
            if (existing) await fs.rm(target, { force: true });
            await fs.mkdir(target, mode);
          }
          await fs.chmod(target, mode);
        } else {
          if (existing?.isDirectory()) await fs.rm(target, { recursive: true, force: true });
          else if (existing) await fs.unlink(target);
          if (h.type === 'file' || h.type === 'contiguous-file') {
            const fh = await fs.open(target, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, mode);
            try {
              for await (const chunk of entry) await fh.write(chunk as Buffer);
            } finally {
              await fh.close();
            }
            await fs.chmod(target, mode);
          } else if (h.type === 'symlink') {
            await fs.symlink(h.linkname ?? '', target);
          } else if (h.type === 'link') {
            let linkComps: string[];
            try {
              linkComps = entryComponents(h.linkname ?? '');
            } catch {
              throw new CopyError(`${opts.what}: hardlink ${h.name} points outside the extraction directory`);
            }
            const src = await resolveInRoot(root, [...baseComponents, ...linkComps], false);
            const st = await fs.lstat(src.hostPath).catch(() => undefined);
            if (!st?.isFile()) throw new CopyError(`${opts.what}: hardlink ${h.name} -> ${h.linkname}: target is not a file in the archive`);
            await fs.link(src.hostPath, target);
          } else {
            entry.resume();
            continue;
          }
        }
        if (opts.chown) await fs.lchown(target, h.uid ?? 0, h.gid ?? 0);
        if (h.type !== 'symlink' && h.mtime) await fs.lutimes(target, h.mtime, h.mtime).catch(() => undefined);
        count++;
      } finally {
        entry.resume();
      }
    }
  })();
  stream.on('error', (err) => extract.destroy(err));
  stream.pipe(extract);
  await done;
  return count;
}

/** Whether a file is a tar archive (plain or gzip-compressed), by its first bytes. */
export async function archiveKind(file: string): Promise<'tar' | 'gzip' | undefined> {
  const fh = await fs.open(file, 'r');
  try {
    const buf = Buffer.alloc(512);
    const { bytesRead } = await fh.read(buf, 0, 512, 0);
    if (bytesRead >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) return 'gzip';
    if (bytesRead >= 262 && buf.subarray(257, 262).toString('latin1') === 'ustar') return 'tar';
    return undefined;
  } finally {
    await fh.close();
  }
}
