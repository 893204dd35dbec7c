/**
 * Layer fixtures: hand-built tars (tar-stream) for the hostile corpus, and a real OCI image made
 * by umoci from busybox-static that exercises every changeset feature, with umoci's own unpack as
 * the oracle rootfs. Also tree snapshots to compare rootfs trees.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, promises as fs, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import zlib from 'node:zlib';
import * as tar from 'tar-stream';
import { syscalls } from '../../core/sys/syscalls';

export interface TarEntry {
  name: string;
  type?: tar.Header['type'];
  content?: string | Buffer;
  linkname?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  devmajor?: number;
  devminor?: number;
  pax?: Record<string, string>;
}

/** A tar archive of `entries`, in order, exactly as given (no name cleaning). */
export async function tarOf(entries: TarEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => chunks.push(c as Buffer));
  const done = new Promise<void>((resolve, reject) => {
    pack.on('end', resolve);
    pack.on('error', reject);
  });
  for (const e of entries) {
    const type = e.type ?? 'file';
    // Files always get a body (an empty one too): tar-stream waits for a body stream otherwise.
    const content = e.content !== undefined ? Buffer.from(e.content) : type === 'file' ? Buffer.alloc(0) : undefined;
    const header = {
      name: e.name,
      type,
      mode: e.mode ?? (type === 'directory' ? 0o755 : 0o644),
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
      mtime: new Date(1_700_000_000_000),
      linkname: e.linkname,
      devmajor: e.devmajor,
      devminor: e.devminor,
      size: content?.length ?? 0,
      pax: e.pax,
    };
    await new Promise<void>((resolve, reject) => {
      if (content) pack.entry(header, content, (err) => (err ? reject(err) : resolve()));
      else pack.entry(header, (err) => (err ? reject(err) : resolve()));
    });
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

export function streamOf(buf: Buffer): Readable {
  // Several chunks, so parsers see entries split across reads.
  const chunks: Buffer[] = [];
  for (let i = 0; i < buf.length; i += 700) chunks.push(buf.subarray(i, i + 700));
  return Readable.from(chunks);
}

export interface FixtureLayer {
  blob: string;
  mediaType: string;
  diffId: string;
}

export interface FixtureImage {
  layout: string;
  layers: FixtureLayer[];
  /** The rootfs `umoci unpack` made: the oracle. */
  oracle: string;
}

function run(cmd: string, args: string[], cwd?: string): string {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function sha256File(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

/** Chain IDs of a list of diff IDs (OCI image spec: ChainID(L0|..|Ln) = sha256(ChainID(..n-1) + " " + DiffID(n))). */
export function chainIds(diffIds: string[]): string[] {
  const out: string[] = [];
  for (const diffId of diffIds) {
    const prev = out[out.length - 1];
    out.push(prev === undefined ? diffId : `sha256:${createHash('sha256').update(`${prev} ${diffId}`).digest('hex')}`);
  }
  return out;
}

const LONG = 'x'.repeat(100);

/**
 * Builds the conformance image in `dir` with umoci (needs root for owners, devices, xattrs).
 * Layers: 1 busybox + base tree; 2 deletions, replacements, retarget; 3 empty; 4 hand-made
 * opaque dir + whiteout of a missing path; 5 the same kind of change, stored uncompressed.
 */
export async function makeUmociImage(dir: string): Promise<FixtureImage> {
  const layout = path.join(dir, 'layout');
  const bundle = path.join(dir, 'bundle');
  const image = `${layout}:test`;
  run('umoci', ['init', '--layout', layout]);
  run('umoci', ['new', '--image', image]);
  run('umoci', ['unpack', '--image', image, bundle]);
  const r = (p: string) => path.join(bundle, 'rootfs', p);
  // Layer 1.
  await fs.mkdir(r('bin'), { recursive: true });
  await fs.copyFile('/bin/busybox', r('bin/busybox'));
  await fs.chmod(r('bin/busybox'), 0o755);
  await fs.symlink('busybox', r('bin/sh'));
  await fs.mkdir(r('etc'));
  await fs.writeFile(r('etc/gone'), 'deleted in layer 2\n');
  await fs.writeFile(r('etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  await fs.mkdir(r('dir/sub'), { recursive: true });
  await fs.writeFile(r('dir/sub/file'), 'whole directory deleted in layer 2\n');
  await fs.writeFile(r('dir/keep'), 'kept\n');
  await fs.mkdir(r('opq'));
  await fs.writeFile(r('opq/old1'), 'hidden by opaque\n');
  await fs.mkdir(r('opq/olddir'));
  await fs.writeFile(r('opq/olddir/f'), 'hidden too\n');
  await fs.writeFile(r('file-to-dir'), 'becomes a directory\n');
  await fs.mkdir(r('dir-to-file'));
  await fs.writeFile(r('dir-to-file/inner'), 'becomes a file\n');
  await fs.writeFile(r('target1'), 'one\n');
  await fs.writeFile(r('target2'), 'two\n');
  await fs.symlink('target1', r('link'));
  await fs.writeFile(r('hard-a'), 'hardlinked\n');
  await fs.link(r('hard-a'), r('hard-b'));
  await fs.writeFile(r('setuid'), '#!/bin/sh\n');
  await fs.chmod(r('setuid'), 0o4755);
  await fs.mkdir(r('setgid-dir'));
  await fs.chmod(r('setgid-dir'), 0o2775);
  await fs.mkdir(r('home/user'), { recursive: true });
  await fs.writeFile(r('home/user/owned'), 'uid 1000\n');
  await fs.lchown(r('home/user/owned'), 1000, 1000);
  await fs.lchown(r('home/user'), 1000, 1000);
  await fs.writeFile(r('héllo wörld ✓'), 'non-ascii\n');
  await fs.mkdir(r(`long/${LONG}/${LONG}`), { recursive: true });
  await fs.writeFile(r(`long/${LONG}/${LONG}/${LONG}`), 'long path\n');
  run('mkfifo', [r('fifo')]);
  await fs.writeFile(r('xattr-file'), 'has a user xattr\n');
  syscalls.lsetxattr(r('xattr-file'), 'user.berth', Buffer.from('value'));
  await fs.writeFile(r('sparse'), '');
  await fs.truncate(r('sparse'), 1 << 20);
  run('umoci', ['repack', '--refresh-bundle', '--image', image, bundle]);
  // Layer 2.
  await fs.rm(r('etc/gone'));
  await fs.rm(r('dir/sub'), { recursive: true });
  await fs.rm(r('file-to-dir'));
  await fs.mkdir(r('file-to-dir'));
  await fs.writeFile(r('file-to-dir/inner'), 'now a directory\n');
  await fs.rm(r('dir-to-file'), { recursive: true });
  await fs.writeFile(r('dir-to-file'), 'now a file\n');
  await fs.rm(r('link'));
  await fs.symlink('target2', r('link'));
  await fs.writeFile(r('etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n');
  run('umoci', ['repack', '--refresh-bundle', '--image', image, bundle]);
  // Layer 3: empty.
  const emptyTar = path.join(dir, 'empty.tar');
  writeFileSync(emptyTar, await tarOf([]));
  run('umoci', ['raw', 'add-layer', '--image', image, emptyTar]);
  // Layer 4: opaque directory with new entries in the same layer, whiteout of a missing path.
  const opaqueTar = path.join(dir, 'opaque.tar');
  writeFileSync(
    opaqueTar,
    await tarOf([
      { name: 'opq/', type: 'directory', mode: 0o755 },
      { name: 'opq/.wh..wh..opq' },
      { name: 'opq/new', content: 'added with the opaque marker\n' },
      { name: '.wh.does-not-exist' },
      { name: 'dir/.wh.also-missing' },
    ]),
  );
  run('umoci', ['raw', 'add-layer', '--image', image, opaqueTar]);
  // Layer 5: to be stored uncompressed.
  const plainTar = path.join(dir, 'plain.tar');
  writeFileSync(plainTar, await tarOf([{ name: 'uncompressed', content: 'from an uncompressed layer\n', mode: 0o600 }]));
  run('umoci', ['raw', 'add-layer', '--image', image, plainTar]);
  storeLastLayerUncompressed(layout);
  run('umoci', ['unpack', '--image', image, path.join(dir, 'oracle')]);

  const blobPath = (digest: string) => path.join(layout, 'blobs', 'sha256', digest.slice('sha256:'.length));
  const index = JSON.parse(readFileSync(path.join(layout, 'index.json'), 'utf8'));
  const manifest = JSON.parse(readFileSync(blobPath(index.manifests[0].digest), 'utf8'));
  const config = JSON.parse(readFileSync(blobPath(manifest.config.digest), 'utf8'));
  const layers = (manifest.layers as Array<{ mediaType: string; digest: string }>).map((l, i) => ({
    blob: blobPath(l.digest),
    mediaType: l.mediaType,
    diffId: config.rootfs.diff_ids[i] as string,
  }));
  return { layout, layers, oracle: path.join(dir, 'oracle', 'rootfs') };
}

/** Rewrites the image so its last layer is stored as a plain tar (umoci itself always gzips). */
function storeLastLayerUncompressed(layout: string): void {
  const blobs = path.join(layout, 'blobs', 'sha256');
  const writeBlob = (data: Buffer) => {
    const hex = createHash('sha256').update(data).digest('hex');
    writeFileSync(path.join(blobs, hex), data);
    return { digest: `sha256:${hex}`, size: data.length };
  };
  const indexFile = path.join(layout, 'index.json');
  const index = JSON.parse(readFileSync(indexFile, 'utf8'));
  const manifestDigest: string = index.manifests[0].digest;
  const manifest = JSON.parse(readFileSync(path.join(blobs, manifestDigest.slice(7)), 'utf8'));
  const last = manifest.layers[manifest.layers.length - 1];
  const plain = zlib.gunzipSync(readFileSync(path.join(blobs, last.digest.slice(7))));
  const { digest, size } = writeBlob(plain);
  manifest.layers[manifest.layers.length - 1] = { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest, size };
  const m = writeBlob(Buffer.from(JSON.stringify(manifest)));
  index.manifests[0] = { ...index.manifests[0], digest: m.digest, size: m.size };
  writeFileSync(indexFile, JSON.stringify(index));
}

export interface TreeEntry {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size?: number;
  sha256?: string;
  link?: string;
  rdev?: number;
  xattrs?: Record<string, string>;
}

/** Every path below `root` (not the root itself) with what a rootfs comparison cares about. */
export async function snapshotTree(root: string): Promise<Record<string, TreeEntry>> {
  const out: Record<string, TreeEntry> = {};
  const walk = async (rel: string): Promise<void> => {
    for (const name of (await fs.readdir(path.join(root, rel))).sort()) {
      const childRel = rel ? `${rel}/${name}` : name;
      const p = path.join(root, childRel);
      const st = await fs.lstat(p);
      const entry: TreeEntry = {
        type: st.isDirectory() ? 'dir' : st.isFile() ? 'file' : st.isSymbolicLink() ? 'symlink' : st.isFIFO() ? 'fifo' : st.isCharacterDevice() ? 'char' : st.isBlockDevice() ? 'block' : 'other',
        mode: st.mode & 0o7777,
        uid: st.uid,
        gid: st.gid,
      };
      if (st.isFile()) {
        entry.size = st.size;
        entry.sha256 = await hashFile(p);
      }
      if (st.isSymbolicLink()) entry.link = await fs.readlink(p);
      if (st.isCharacterDevice() || st.isBlockDevice()) entry.rdev = st.rdev;
      const names = syscalls.llistxattr(p).filter((n) => n.startsWith('user.'));
      if (names.length > 0) entry.xattrs = Object.fromEntries(names.map((n) => [n, syscalls.lgetxattr(p, n)!.toString()]));
      out[childRel] = entry;
      if (st.isDirectory()) await walk(childRel);
    }
  };
  await walk('');
  return out;
}

function hashFile(p: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(p)
      .on('data', (c) => h.update(c))
      .on('end', () => resolve(h.digest('hex')))
      .on('error', reject);
  });
}

export { sha256File };
