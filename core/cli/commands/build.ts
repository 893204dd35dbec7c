/**
 * `berth build`: tar the context (leaving out what .dockerignore names, as the docker CLI does),
 * stream it to POST /build, and render the JSON messages that come back. Like the docker CLI's
 * classic builder path: `-` reads a Dockerfile (or a context tar) from stdin, `-f -` reads the
 * Dockerfile from stdin next to a context directory, a Dockerfile outside the context is added to
 * the tar under a private name. Exits with the failing RUN's code, like docker build.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import * as tar from 'tar-stream';
import type { CommandContext } from '../main';
import { UsageError } from '../main';
import { parse } from '../args';
import { IgnoreMatcher } from '../../build/ignore';
import { readJsonLines } from '../client';

const USAGE = 'berth build [OPTIONS] PATH | -';

function keyValues(list: string[] | undefined, flag: string, fromEnv: boolean): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of list ?? []) {
    const eq = kv.indexOf('=');
    if (eq === 0) throw new UsageError(`${flag} ${kv}: the name is empty`);
    if (eq < 0) {
      // docker: `--build-arg NAME` takes the value from the environment, and is skipped when unset.
      if (fromEnv) {
        if (process.env[kv] !== undefined) out[kv] = process.env[kv]!;
        continue;
      }
      out[kv] = '';
      continue;
    }
    out[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return out;
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Every path of the context that is not ignored, parents first, sorted. */
function walkContext(root: string, ignore: IgnoreMatcher, keep: Set<string>): string[] {
  const out: string[] = [];
  const visit = (dirRel: string) => {
    const names = fs.readdirSync(path.join(root, dirRel)).sort();
    for (const name of names) {
      const rel = dirRel ? `${dirRel}/${name}` : name;
      const st = fs.lstatSync(path.join(root, rel));
      const ignored = !keep.has(rel) && ignore.ignores(rel);
      if (ignored && !(st.isDirectory() && ignore.mayReincludeBelow(rel))) continue;
      if (!ignored) out.push(rel);
      if (st.isDirectory()) visit(rel);
    }
  };
  visit('');
  return out;
}

/** The context as a tar stream, owners 0:0 (the docker CLI sends the same). */
function packContext(root: string, paths: string[], extra?: { name: string; data: Buffer }): Readable {
  const pack = tar.pack();
  const out = new PassThrough();
  const add = (header: Partial<tar.Header> & { name: string }, body?: Buffer) =>
    new Promise<void>((resolve, reject) => pack.entry(header, body ?? Buffer.alloc(0), (err) => (err ? reject(err) : resolve())));
  (async () => {
    for (const rel of paths) {
      const host = path.join(root, rel);
      const st = fs.lstatSync(host);
      const base = { name: rel, mode: st.mode & 0o7777, mtime: st.mtime, uid: 0, gid: 0 };
      if (st.isDirectory()) await add({ ...base, type: 'directory' });
      else if (st.isSymbolicLink()) await add({ ...base, type: 'symlink', linkname: fs.readlinkSync(host) });
      else if (st.isFile()) {
        await new Promise<void>((resolve, reject) => {
          const sink = pack.entry({ ...base, type: 'file', size: st.size }, (err) => (err ? reject(err) : resolve()));
          const src = fs.createReadStream(host);
          src.on('error', reject);
          src.pipe(sink as unknown as NodeJS.WritableStream);
        });
      }
      // Sockets, fifos and devices have no place in a build context.
    }
    if (extra) await add({ name: extra.name, type: 'file', mode: 0o644, mtime: new Date(), uid: 0, gid: 0, size: extra.data.length }, extra.data);
    pack.finalize();
  })().catch((err) => {
    pack.destroy(err);
    out.destroy(err);
  });
  pack.pipe(out);
  return out;
}

/** The context's .dockerignore, if any: a regular file only (O_NONBLOCK: a FIFO must not hang the CLI). */
function readIgnoreFile(file: string): string | undefined {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new UsageError(`unable to prepare context: cannot read ${file}: ${(e as Error).message}`);
  }
  try {
    if (!fs.fstatSync(fd).isFile()) throw new UsageError(`unable to prepare context: ${file} is not a regular file`);
    return fs.readFileSync(fd, 'utf8');
  } finally {
    fs.closeSync(fd);
  }
}

export async function build({ client, argv, out, err }: CommandContext): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      tag: { type: 'string', short: 't', multiple: true, help: "Name and optionally a tag in the 'name:tag' format" },
      file: { type: 'string', short: 'f', help: "Name of the Dockerfile (Default is 'PATH/Dockerfile')" },
      'build-arg': { type: 'string', multiple: true, help: 'Set build-time variables' },
      label: { type: 'string', multiple: true, help: 'Set metadata for an image' },
      'no-cache': { type: 'boolean', help: 'Do not use cache when building the image' },
      pull: { type: 'boolean', help: 'Always attempt to pull a newer version of the image' },
      target: { type: 'string', help: 'Set the target build stage to build' },
      quiet: { type: 'boolean', short: 'q', help: 'Suppress the build output and print image ID on success' },
      rm: { type: 'boolean', help: 'Remove intermediate containers after a successful build', default: 'true' },
      'force-rm': { type: 'boolean', help: 'Always remove intermediate containers' },
    },
    USAGE,
    { min: 1, max: 1 },
  );
  const rm = values.rm ?? true;
  const contextArg = positionals[0];
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(contextArg) || contextArg.startsWith('git@'))
    throw new UsageError(`remote build contexts (${contextArg}) are not supported: clone or download it and build the directory`);

  const query = new URLSearchParams();
  for (const t of values.tag ?? []) query.append('t', t);
  const buildArgs = keyValues(values['build-arg'], '--build-arg', true);
  if (Object.keys(buildArgs).length) query.set('buildargs', JSON.stringify(buildArgs));
  const labels = keyValues(values.label, '--label', false);
  if (Object.keys(labels).length) query.set('labels', JSON.stringify(labels));
  if (values['no-cache']) query.set('nocache', '1');
  if (values.pull) query.set('pull', '1');
  if (values.target) query.set('target', values.target);
  if (values.quiet) query.set('q', '1');
  query.set('rm', rm ? '1' : '0');
  if (values['force-rm']) query.set('forcerm', '1');

  let body: Readable;
  if (contextArg === '-') {
    if (values.file === '-') throw new UsageError('cannot read both the context and the Dockerfile from stdin');
    if (process.stdin.isTTY) throw new UsageError('the context is "-" (stdin), but stdin is a terminal: pipe a Dockerfile or a context tar in');
    // A Dockerfile or a context tar: the daemon tells them apart by their first bytes.
    body = process.stdin;
  } else {
    const root = path.resolve(contextArg);
    const st = fs.statSync(root, { throwIfNoEntry: false });
    if (!st?.isDirectory()) throw new UsageError(`unable to prepare context: path "${contextArg}" not found or not a directory`);
    let extra: { name: string; data: Buffer } | undefined;
    let dockerfileRel = 'Dockerfile';
    if (values.file === '-') {
      extra = { name: `.dockerfile.${randomBytes(10).toString('hex')}`, data: await readAll(process.stdin) };
      dockerfileRel = extra.name;
    } else {
      const file = values.file ? path.resolve(values.file) : path.join(root, 'Dockerfile');
      if (!fs.statSync(file, { throwIfNoEntry: false })?.isFile()) throw new UsageError(`unable to prepare context: Dockerfile ${values.file ?? path.join(contextArg, 'Dockerfile')} not found`);
      const rel = path.relative(root, file);
      if (rel.startsWith('..') || path.isAbsolute(rel)) {
        // Outside the context: sent inside it under a name no context file has (docker does the same).
        extra = { name: `.dockerfile.${randomBytes(10).toString('hex')}`, data: fs.readFileSync(file) };
        dockerfileRel = extra.name;
      } else dockerfileRel = rel.split(path.sep).join('/');
    }
    const ignoreFile = path.join(root, '.dockerignore');
    const ignore = IgnoreMatcher.parse(readIgnoreFile(ignoreFile));
    // The Dockerfile and .dockerignore always travel, even when .dockerignore names them.
    const keep = new Set([dockerfileRel, '.dockerignore']);
    body = packContext(root, walkContext(root, ignore, keep), extra);
    query.set('dockerfile', dockerfileRel);
  }

  const res = await client.request(`/build?${query}`, { method: 'POST', body, headers: { 'Content-Type': 'application/x-tar' } });
  let imageId: string | undefined;
  let failure: { message: string; code?: number } | undefined;
  const handle = (msg: any) => {
    if (msg.error || msg.errorDetail) {
      failure = { message: msg.errorDetail?.message ?? msg.error, code: msg.errorDetail?.code };
      return;
    }
    if (msg.aux?.ID) {
      imageId = msg.aux.ID;
      return;
    }
    if (typeof msg.stream === 'string') {
      if (values.quiet) {
        // Quiet: the daemon sends the image ID, or the held-back output of a failed build.
        if (/^sha256:[a-f0-9]{64}\n$/.test(msg.stream)) imageId = msg.stream.trim();
        else err.write(msg.stream);
      } else out.write(msg.stream);
      return;
    }
    if (msg.status && !values.quiet && !msg.progressDetail?.current) out.write(msg.id ? `${msg.id}: ${msg.status}\n` : `${msg.status}\n`);
  };
  await readJsonLines(res, handle);
  if (failure) {
    err.write(`${failure.message}\n`);
    return failure.code && failure.code > 0 ? failure.code : 1;
  }
  if (!imageId) {
    err.write('the daemon ended the build without an image ID (see berthd log)\n');
    return 1;
  }
  if (values.quiet) out.write(`${imageId}\n`);
  return 0;
}
