import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * How much of a write must survive a power loss: `durable` (the default) fsyncs the data before
 * the rename, and the directory after it when the name is new; a rename over an existing name
 * needs no directory fsync (at worst the previous version survives, as with moby's atomic
 * writes). `atomic` only renames: for state that means nothing after a reboot (what a running
 * container needs), where readers and a crashed berthd still never see half a file.
 */
export type Durability = 'durable' | 'atomic';

/** Write a file atomically: temp file in the same directory, rename over the target. */
export async function writeFileAtomic(file: string, data: string | Buffer, mode = 0o600, durability: Durability = 'durable'): Promise<void> {
  const tmp = path.join(path.dirname(file), `.tmp-${path.basename(file)}-${randomBytes(4).toString('hex')}`);
  const fh = await fs.promises.open(tmp, 'w', mode);
  try {
    await fh.writeFile(data);
    if (durability === 'durable') await fh.sync();
  } finally {
    await fh.close();
  }
  const isNew = durability === 'durable' && !(await exists(file));
  try {
    await fs.promises.rename(tmp, file);
  } catch (err) {
    await fs.promises.rm(tmp, { force: true });
    throw err;
  }
  if (isNew) await fsyncDir(path.dirname(file));
}

export async function writeJsonAtomic(file: string, value: unknown, durability: Durability = 'durable'): Promise<void> {
  await writeFileAtomic(file, JSON.stringify(value, null, 2) + '\n', 0o600, durability);
}

async function exists(file: string): Promise<boolean> {
  return fs.promises.access(file).then(
    () => true,
    () => false,
  );
}

export async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await fs.promises.readFile(file, 'utf8')) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fs.promises.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** mkdir -p with a mode for every directory created (state directories are 0700). */
export async function ensureDir(dir: string, mode = 0o700): Promise<void> {
  await fs.promises.mkdir(dir, { recursive: true, mode });
}
