/**
 * The bench's images, made by tools written by others: umoci builds a busybox image, and a big
 * one with four more layers of incompressible data (each added verbatim with `umoci raw add-layer`
 * from a tar made by tar(1)); skopeo pushes both to a local docker-registry as Docker schema2
 * (every peer pulls that).
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
  /** The OCI layout both were built in (kept for the runc bundle). */
  layoutDir: string;
}

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
  await mustRun('umoci', ['gc', '--layout', layoutDir]);
  const busyboxRef = `${registryHost}/bench/busybox:latest`;
  const bigRef = `${registryHost}/bench/big:latest`;
  await pushImage(`${layoutDir}:busybox`, registryHost, 'bench/busybox:latest', { format: 'v2s2' });
  await pushImage(big.ref, registryHost, 'bench/big:latest', { format: 'v2s2' });
  return { busybox: busyboxRef, big: bigRef, bigDataBytes: shape.layers * shape.bytesPerLayer, layoutDir };
}
