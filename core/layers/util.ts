import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';

/** Bytes a tree occupies on disk (allocated blocks; each hardlinked inode counted once). */
export async function diskUsage(root: string): Promise<number> {
  const seen = new Set<string>();
  let total = 0;
  const walk = async (p: string): Promise<void> => {
    const st = await fs.lstat(p);
    const key = `${st.dev}:${st.ino}`;
    if (seen.has(key)) return;
    seen.add(key);
    total += st.blocks * 512;
    if (st.isDirectory()) await Promise.all((await fs.readdir(p)).map((name) => walk(path.join(p, name))));
  };
  try {
    await walk(root);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  return total;
}

/** Reads a stream to its end, discarding the data; rejects if the stream errors. */
export async function drain(stream: Readable): Promise<void> {
  for await (const _chunk of stream) {
    // discard
  }
}

/**
 * Bytes used by each entry of a driver's directory (`tmp-*` work in progress left out), measured
 * at `entry/sub`: what storage drivers report from `usage()` for layers and containers.
 */
export async function usageByEntry(dir: string, sub = '', key: (name: string) => string = (n) => n): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const name of await fs.readdir(dir)) {
    if (!name.startsWith('tmp-')) out[key(name)] = await diskUsage(path.join(dir, name, sub));
  }
  return out;
}
