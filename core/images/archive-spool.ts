/**
 * Spooling an image archive for load: its regular files unpacked to a private directory under
 * numbered names, each hashed on the way (docker archives list manifest.json last, so nothing can
 * be planned before the end), and its links kept by name; then files looked up by the names the
 * archive's metadata uses.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar-stream';
import { InvalidArgumentError } from '../contracts/errors';

/** manifest.json, index.json, configs and manifests are small; a bigger one is not an image archive. */
const MAX_METADATA_BYTES = 16 * 1024 * 1024;

/** One file of a spooled archive. */
export interface SpooledFile {
  file: string;
  size: number;
  digest: string;
}

export interface SpooledArchive {
  files: Map<string, SpooledFile>;
  /** Symlinks and hardlinks between entries: name -> target name (old docker archives link shared layers). */
  links: Map<string, string>;
}

/** `./a//b/` -> `a/b`; refuses names that climb out. */
export function normalizeName(name: string): string {
  const norm = path.posix.normalize(name.replace(/^\/+/, '')).replace(/\/+$/, '');
  return norm === '.' ? '' : norm;
}

/** Unpack the archive's regular files into `dir` under numbered names, hashing each. */
export async function spool(input: Readable, dir: string): Promise<SpooledArchive> {
  const files = new Map<string, SpooledFile>();
  const links = new Map<string, string>();
  const extract = tar.extract();
  let n = 0;
  const onEntry = async (header: tar.Header, entry: Readable): Promise<void> => {
    const name = normalizeName(header.name);
    const type = header.type;
    if ((type === 'file' || type === 'contiguous-file') && name && !name.startsWith('../')) {
      const file = path.join(dir, String(n++));
      const hash = createHash('sha256');
      let size = 0;
      const hasher = new Transform({
        transform(chunk: Buffer, _e, cb) {
          hash.update(chunk);
          size += chunk.length;
          cb(null, chunk);
        },
      });
      await pipeline(entry, hasher, fs.createWriteStream(file, { mode: 0o600 }));
      files.set(name, { file, size, digest: 'sha256:' + hash.digest('hex') });
      return;
    }
    if ((type === 'symlink' || type === 'link') && header.linkname) {
      const target = type === 'symlink' ? path.posix.join(path.posix.dirname(name), header.linkname) : header.linkname;
      links.set(name, normalizeName(target));
    }
    // As tar-stream's README drains: listen for the end first, then let it flow.
    const ended = new Promise((resolve) => entry.once('end', resolve));
    entry.resume();
    await ended;
  };
  // The entry event with its `next` callback (not the async iterator, whose end can race the
  // last entry of a small archive that arrived in one chunk).
  extract.on('entry', (header, entry, next) => {
    onEntry(header, entry as unknown as Readable).then(
      () => next(),
      (err: Error) => next(err),
    );
  });
  try {
    await pipeline(input, extract);
  } catch (err) {
    throw new InvalidArgumentError(`the archive is not a valid tar: ${(err as Error).message}`, { cause: err });
  }
  if (!files.size) throw new InvalidArgumentError('the archive holds no files: not an image archive');
  return { files, links };
}

export function lookup(archive: SpooledArchive, name: string, what: string): SpooledFile {
  let cur = normalizeName(name);
  for (let hops = 0; hops < 16; hops++) {
    const f = archive.files.get(cur);
    if (f) return f;
    const next = archive.links.get(cur);
    if (next === undefined) break;
    cur = next;
  }
  throw new InvalidArgumentError(`the archive lacks ${what} (${name})`);
}

export async function readSmall(f: SpooledFile, what: string): Promise<Buffer> {
  if (f.size > MAX_METADATA_BYTES) throw new InvalidArgumentError(`${what} is larger than ${MAX_METADATA_BYTES} bytes`);
  return fs.promises.readFile(f.file);
}

export async function readJsonFile(f: SpooledFile, what: string): Promise<any> {
  const bytes = await readSmall(f, what);
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new InvalidArgumentError(`${what} is not valid JSON: ${(err as Error).message}`);
  }
}

/** Whether a spooled file starts with the gzip magic. */
export async function isGzip(f: SpooledFile): Promise<boolean> {
  const fh = await fs.promises.open(f.file, 'r');
  try {
    const buf = Buffer.alloc(2);
    const { bytesRead } = await fh.read(buf, 0, 2, 0);
    return bytesRead === 2 && buf[0] === 0x1f && buf[1] === 0x8b;
  } finally {
    await fh.close();
  }
}
