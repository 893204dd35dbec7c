/**
 * The bench's images, made by tools written by others: umoci builds a busybox image; a big one
 * with four more layers of incompressible data; and a many-file one from real files of this
 * machine (host directories of docs, man pages, python3 and perl libraries, one layer each group,
 * plus one 20 MiB random file). Each extra layer is a tar made by tar(1), added with `umoci raw
 * add-layer` (which gzips it, as registries serve layers); skopeo pushes the images to a local
 * docker-registry as Docker schema2 (every peer pulls that).
 */
import crypto from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { buildBusyboxLayout, pushImage } from '../helpers/fixtures';
import { mustRun, seeded } from './lib';

export interface BenchImages {
  /** `HOST/bench/busybox:latest`: one layer, busybox and its applets. */
  busybox: string;
  /** `HOST/bench/big:latest`: busybox plus four layers of random data. */
  big: string;
  /** Uncompressed bytes of the big image's four data layers. */
  bigDataBytes: number;
  /** `HOST/bench/files:latest`: busybox plus layers of real files from this machine. */
  files: string;
  /** What the many-file image holds: entries and bytes of its host-file layers, and its layers. */
  filesShape: { entries: number; bytes: number; layers: string[] };
  /** `HOST/bench/layers:latest`: busybox plus MANY_LAYERS - 1 layers of one small file each. */
  layers: string;
  /** The OCI layout both were built in (kept for the runc bundle). */
  layoutDir: string;
}

/** Layers of the many-layer image: a pull must cost per layer, not per layer squared. */
export const MANY_LAYERS = 100;

export interface BigImageShape {
  layers: number;
  /** Bytes of random data per layer. */
  bytesPerLayer: number;
  /** Files per layer (sizes vary; they sum to bytesPerLayer). */
  filesPerLayer: number;
}

export const DEFAULT_BIG: BigImageShape = { layers: 4, bytesPerLayer: 45 * 1024 * 1024, filesPerLayer: 300 };

/** Split `total` bytes into `n` file sizes that vary between about 1 KB and twice the mean. */
function fileSizes(total: number, n: number, random: () => number): number[] {
  const weights = Array.from({ length: n }, () => 0.01 + random());
  const sum = weights.reduce((a, b) => a + b, 0);
  const sizes = weights.map((w) => Math.floor((w / sum) * total));
  sizes[0] += total - sizes.reduce((a, b) => a + b, 0);
  return sizes;
}

/** Write one data layer's files (random bytes: gzip cannot shrink them) under `dir/data-N/`. */
async function writeDataLayer(dir: string, layer: number, shape: BigImageShape): Promise<void> {
  const random = seeded(1000 + layer);
  const sizes = fileSizes(shape.bytesPerLayer, shape.filesPerLayer, random);
  const perDir = 60;
  for (let i = 0; i < sizes.length; i++) {
    const sub = path.join(dir, `data-${layer}`, `d${Math.floor(i / perDir)}`);
    if (i % perDir === 0) await fs.mkdir(sub, { recursive: true });
    await fs.writeFile(path.join(sub, `f${i}.bin`), crypto.randomBytes(sizes[i]));
  }
}

/**
 * The many-file image's layers: host directories (relative to /), one layer per group; groups
 * whose directories are all missing are left out. Tens of thousands of small, compressible files.
 */
export const FILES_LAYERS: string[][] = [['usr/share/doc'], ['usr/share/man'], ['usr/lib/python3', 'usr/share/perl']];
/** One incompressible file in a layer of its own, as images carry (a binary, a model, a jar). */
export const FILES_RANDOM_BYTES = 20 * 1024 * 1024;

/** Entries and bytes of regular files below `dir` (not following symlinks). */
async function countTree(dir: string): Promise<{ entries: number; bytes: number }> {
  let entries = 0;
  let bytes = 0;
  for (const e of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
    entries++;
    if (e.isFile()) bytes += (await fs.lstat(path.join(e.parentPath ?? e.path, e.name))).size;
  }
  return { entries, bytes };
}

/** busybox plus FILES_LAYERS (tar(1) of the host directories) plus one random file, as `tag` in the layout. */
export async function buildFilesImage(workDir: string, layoutDir: string, tag: string): Promise<BenchImages['filesShape']> {
  const image = await buildBusyboxLayout(layoutDir, { tag, cmd: ['sh'] });
  const shape: BenchImages['filesShape'] = { entries: 0, bytes: 0, layers: [] };
  const addLayer = async (tarArgs: string[], what: string) => {
    const tarFile = path.join(workDir, `files-layer-${shape.layers.length + 1}.tar`);
    await mustRun('tar', ['--numeric-owner', '-cf', tarFile, ...tarArgs], { timeoutMs: 300_000 });
    await mustRun('umoci', ['raw', 'add-layer', '--image', image.ref, '--history.created_by', `bench files layer: ${what}`, tarFile], { timeoutMs: 300_000 });
    await fs.rm(tarFile, { force: true });
    shape.layers.push(what);
  };
  for (const group of FILES_LAYERS) {
    const present: string[] = [];
    for (const dir of group) {
      const st = await fs.lstat(path.join('/', dir)).catch(() => null);
      if (!st?.isDirectory()) continue;
      present.push(dir);
      const counted = await countTree(path.join('/', dir));
      shape.entries += counted.entries;
      shape.bytes += counted.bytes;
    }
    if (present.length) await addLayer(['-C', '/', ...present], present.map((d) => `/${d}`).join(' '));
  }
  const staging = path.join(workDir, 'files-random');
  await fs.mkdir(path.join(staging, 'opt'), { recursive: true });
  await fs.writeFile(path.join(staging, 'opt', 'blob.bin'), crypto.randomBytes(FILES_RANDOM_BYTES));
  await addLayer(['-C', staging, '--owner=0', '--group=0', 'opt'], `/opt/blob.bin (${FILES_RANDOM_BYTES / 1048576} MiB random)`);
  await fs.rm(staging, { recursive: true, force: true });
  shape.entries += 2;
  shape.bytes += FILES_RANDOM_BYTES;
  return shape;
}

export async function buildAndPushImages(workDir: string, registryHost: string, shape: BigImageShape = DEFAULT_BIG): Promise<BenchImages> {
  const layoutDir = path.join(workDir, 'layout');
  await buildBusyboxLayout(layoutDir, { tag: 'busybox', cmd: ['sh'] });
  const big = await buildBusyboxLayout(layoutDir, { tag: 'big', cmd: ['sh'] });
  for (let layer = 1; layer <= shape.layers; layer++) {
    const staging = path.join(workDir, `staging-${layer}`);
    const tarFile = path.join(workDir, `layer-${layer}.tar`);
    await writeDataLayer(staging, layer, shape);
    await mustRun('tar', ['-C', staging, '--numeric-owner', '--owner=0', '--group=0', '-cf', tarFile, '.']);
    await fs.rm(staging, { recursive: true, force: true });
    await mustRun('umoci', ['raw', 'add-layer', '--image', big.ref, '--history.created_by', `bench data layer ${layer}`, tarFile], { timeoutMs: 300_000 });
    await fs.rm(tarFile, { force: true });
  }
  const filesShape = await buildFilesImage(workDir, layoutDir, 'files');
  const many = await buildBusyboxLayout(layoutDir, { tag: 'layers', cmd: ['sh'] });
  for (let layer = 2; layer <= MANY_LAYERS; layer++) {
    const staging = path.join(workDir, 'staging-many');
    const tarFile = path.join(workDir, 'many-layer.tar');
    await fs.mkdir(path.join(staging, 'layers'), { recursive: true });
    await fs.writeFile(path.join(staging, 'layers', `layer-${layer}`), `${layer}\n`);
    await mustRun('tar', ['-C', staging, '--numeric-owner', '--owner=0', '--group=0', '-cf', tarFile, 'layers']);
    await fs.rm(staging, { recursive: true, force: true });
    await mustRun('umoci', ['raw', 'add-layer', '--image', many.ref, '--history.created_by', `bench layer ${layer}`, tarFile], { timeoutMs: 60_000 });
    await fs.rm(tarFile, { force: true });
  }
  await mustRun('umoci', ['gc', '--layout', layoutDir]);
  await pushImage(`${layoutDir}:busybox`, registryHost, 'bench/busybox:latest', { format: 'v2s2' });
  await pushImage(big.ref, registryHost, 'bench/big:latest', { format: 'v2s2' });
  await pushImage(`${layoutDir}:files`, registryHost, 'bench/files:latest', { format: 'v2s2' });
  await pushImage(many.ref, registryHost, 'bench/layers:latest', { format: 'v2s2' });
  return {
    busybox: `${registryHost}/bench/busybox:latest`,
    big: `${registryHost}/bench/big:latest`,
    bigDataBytes: shape.layers * shape.bytesPerLayer,
    files: `${registryHost}/bench/files:latest`,
    filesShape,
    layers: `${registryHost}/bench/layers:latest`,
    layoutDir,
  };
}
