/**
 * The build context: the body the client sent (a tar, plain or gzip, unpacked as hostile input,
 * see archive.ts; or a lone Dockerfile), and reading its Dockerfile and .dockerignore with
 * symlinks followed inside the context only. COPY's sources are resolved in sources.ts.
 */
import { promises as fs, constants as fsc } from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { InvalidArgumentError } from '../contracts/errors';
import { decompressIfNeeded } from '../images/import';
import { peekStream } from '../util/stream';
import { extractTar } from './archive';
import { type Dockerfile, checkDockerfileSize, parseDockerfile } from './dockerfile';
import { CopyError } from './errors';
import { IgnoreMatcher } from './ignore';
import { resolveScoped } from './sources';

/** Dockerfile and .dockerignore are small; a larger one is refused rather than read into memory. */
const MAX_CONTEXT_FILE = 16 * 1024 * 1024;

/**
 * Reads a file of the build context by its context path (the Dockerfile, .dockerignore), resolved
 * the way Docker scopes them: symlinks are followed inside the context only (an absolute target
 * restarts at the context root). Only a regular file is read: it is opened O_NOFOLLOW|O_NONBLOCK
 * and checked with fstat, so a FIFO or device never blocks or streams forever. Returns undefined
 * when there is no such file; throws a CopyError naming it when it is not a regular file.
 */
export async function readContextFile(root: string, rel: string, shown: string): Promise<string | undefined> {
  const host = await resolveScoped(root, rel, false, shown);
  if (!host) return undefined;
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(host, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    if (code === 'ELOOP') throw new CopyError(`${shown}: not a regular file (a symlink)`);
    throw err;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new CopyError(`${shown} in the build context is not a regular file`);
    if (st.size > MAX_CONTEXT_FILE) throw new CopyError(`${shown} is larger than ${MAX_CONTEXT_FILE} bytes`);
    return await fh.readFile('utf8');
  } finally {
    await fh.close();
  }
}

/**
 * Unpack the body of POST /build into `ctxDir` and read what the build starts from: the parsed
 * Dockerfile (`dockerfileName` inside the context, default `Dockerfile`) and the .dockerignore.
 */
export async function unpackContext(context: Readable, ctxDir: string, dockerfile: string | undefined): Promise<{ dockerfile: Dockerfile; ignore: IgnoreMatcher }> {
  let dockerfileName = dockerfile || 'Dockerfile';
  const body = await decompressIfNeeded(context, 'the build context');
  const { head, stream } = await peekStream(body, 512);
  if (head.length >= 262 && head.subarray(257, 262).toString('latin1') === 'ustar') {
    await extractTar(stream, ctxDir, [], { chown: false, what: 'the build context' });
  } else {
    // `docker build - < Dockerfile`: the body is the Dockerfile itself, with an empty context.
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of stream) {
      size += (c as Buffer).length;
      checkDockerfileSize(size, 'Dockerfile');
      chunks.push(c as Buffer);
    }
    dockerfileName = 'Dockerfile';
    await fs.writeFile(path.join(ctxDir, dockerfileName), Buffer.concat(chunks));
  }
  const text = await readContextFile(ctxDir, dockerfileName, dockerfileName);
  if (text !== undefined) checkDockerfileSize(Buffer.byteLength(text), dockerfileName);
  if (text === undefined) throw new InvalidArgumentError(`Cannot locate specified Dockerfile: ${dockerfileName}`);
  const ignoreText = await readContextFile(ctxDir, '.dockerignore', '.dockerignore');
  return { dockerfile: parseDockerfile(text, path.posix.basename(dockerfileName)), ignore: IgnoreMatcher.parse(ignoreText) };
}
