/** Making images: commit, push, save, load, import. */
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { Readable } from 'node:stream';
import type { CommandContext } from '../main';
import { UsageError } from '../main';
import { parse, registryHost } from '../args';
import { registryAuthHeader } from '../credentials';
import { ProgressRenderer } from '../render';
import { readJsonLines } from '../client';

/** `repo:tag` -> [repo, tag]; a colon inside the host part is not a tag. */
function splitTag(name: string): [string, string | undefined] {
  const colon = name.lastIndexOf(':');
  return colon > name.lastIndexOf('/') ? [name.slice(0, colon), name.slice(colon + 1)] : [name, undefined];
}

/** Read Docker's JSON message stream; returns the error message it carried, if any. */
async function readMessages(res: http.IncomingMessage, onMessage: (msg: any) => void): Promise<string | undefined> {
  let error: string | undefined;
  await readJsonLines(res, (msg) => {
    if (msg.error || msg.errorDetail) error = msg.errorDetail?.message ?? msg.error;
    else onMessage(msg);
  });
  return error;
}

function openInput(file: string | undefined, what: string): Readable {
  if (!file || file === '-') {
    if (process.stdin.isTTY) throw new UsageError(`requested ${what} from stdin, but stdin is a terminal: use a file or redirect`);
    return process.stdin;
  }
  if (!fs.existsSync(file)) throw new UsageError(`${what} ${file}: no such file`);
  return fs.createReadStream(file);
}

export async function commit({ client, argv, out }: CommandContext): Promise<void> {
  const { values, positionals } = parse(
    argv,
    {
      author: { type: 'string', short: 'a', help: 'Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")' },
      change: { type: 'string', short: 'c', multiple: true, help: 'Apply Dockerfile instruction to the created image' },
      message: { type: 'string', short: 'm', help: 'Commit message' },
      pause: { type: 'boolean', short: 'p', help: 'Pause container during commit', default: 'true' },
    },
    'berth commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]',
    { min: 1, max: 2 },
  );
  const pause = values.pause ?? true;
  const [repo, tag] = positionals[1] ? splitTag(positionals[1]) : [undefined, undefined];
  const qs = new URLSearchParams({ container: positionals[0], pause: pause ? '1' : '0' });
  if (repo) qs.set('repo', repo);
  if (tag) qs.set('tag', tag);
  if (values.message) qs.set('comment', values.message);
  if (values.author) qs.set('author', values.author);
  // Repeated `changes` parameters, as the docker CLI sends them.
  for (const c of values.change ?? []) qs.append('changes', c);
  const res = await client.json<{ Id: string }>(`/commit?${qs}`, { method: 'POST', body: {} });
  out.write(`${res.Id}\n`);
}

export async function push({ client, argv, out }: CommandContext): Promise<number> {
  const { values, positionals } = parse(
    argv,
    { 'all-tags': { type: 'boolean', short: 'a', help: 'Push all tagged images in the repository' }, quiet: { type: 'boolean', short: 'q', help: 'Suppress verbose output' } },
    'berth push [OPTIONS] NAME[:TAG]',
    { min: 1, max: 1 },
  );
  const [name, givenTag] = splitTag(positionals[0]);
  if (positionals[0].includes('@')) throw new UsageError(`cannot push a digest reference: ${positionals[0]}`);
  if (values['all-tags'] && givenTag) throw new UsageError("tag can't be used with --all-tags/-a");
  const tag = values['all-tags'] ? undefined : (givenTag ?? 'latest');
  if (!values['all-tags'] && !givenTag && !values.quiet) out.write('Using default tag: latest\n');
  const renderer = new ProgressRenderer(out);
  let digest: string | undefined;
  await client.stream(`/images/${encodeURIComponent(name)}/push`, { method: 'POST', query: { tag }, headers: registryAuthHeader(registryHost(name)) }, (msg) => {
    if (msg.aux?.Digest) digest = msg.aux.Digest;
    if (msg.aux) return;
    if (!values.quiet || msg.error || msg.errorDetail) renderer.handle(msg);
  });
  if (renderer.error) {
    process.stderr.write(`${renderer.error}\n`);
    return 1;
  }
  if (values.quiet) out.write(`${name}${tag ? `:${tag}` : ''}${digest ? `@${digest}` : ''}\n`);
  return 0;
}

export async function save({ client, argv, out }: CommandContext): Promise<void> {
  const { values, positionals } = parse(argv, { output: { type: 'string', short: 'o', help: 'Write to a file, instead of STDOUT' } }, 'berth save [OPTIONS] IMAGE [IMAGE...]', { min: 1 });
  if (!values.output && out.isTTY) throw new UsageError('cowardly refusing to save to a terminal. Use the -o flag or redirect');
  const qs = new URLSearchParams();
  for (const n of positionals) qs.append('names', n);
  const res = await client.request(`/images/get?${qs}`);
  // Written next to the target and renamed at the end, so a failed save leaves no half archive.
  const tmp = values.output ? `${values.output}.tmp-${process.pid}` : undefined;
  const dest = tmp ? fs.createWriteStream(tmp) : out;
  try {
    await new Promise<void>((resolve, reject) => {
      res.on('error', reject);
      res.on('aborted', () => reject(new Error('the daemon ended the archive early (see berthd log)')));
      dest.on('error', reject);
      res.pipe(dest);
      if (tmp) (dest as fs.WriteStream).on('finish', resolve);
      else res.on('end', resolve);
    });
    if (!res.complete) throw new Error('the daemon ended the archive early (see berthd log)');
    if (tmp) fs.renameSync(tmp, values.output!);
  } finally {
    if (tmp) fs.rmSync(tmp, { force: true });
  }
}

export async function load({ client, argv, out }: CommandContext): Promise<number> {
  const { values } = parse(
    argv,
    { input: { type: 'string', short: 'i', help: 'Read from tar archive file, instead of STDIN' }, quiet: { type: 'boolean', short: 'q', help: 'Suppress the load output' } },
    'berth load [OPTIONS]',
    { max: 0 },
  );
  const input = openInput(values.input, 'the archive');
  const res = await client.request('/images/load', { method: 'POST', query: { quiet: values.quiet }, body: input, headers: { 'Content-Type': 'application/x-tar' } });
  const error = await readMessages(res, (msg) => {
    if (msg.stream) out.write(msg.stream);
    else if (msg.status && !values.quiet) out.write(`${msg.status}\n`);
  });
  if (error) {
    process.stderr.write(`${error}\n`);
    return 1;
  }
  return 0;
}

export async function importImage({ client, argv, out }: CommandContext): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      change: { type: 'string', short: 'c', multiple: true, help: 'Apply Dockerfile instruction to the created image' },
      message: { type: 'string', short: 'm', help: 'Set commit message for imported image' },
      platform: { type: 'string', help: 'Set platform if server is multi-platform capable' },
    },
    'berth import [OPTIONS] file|URL|- [REPOSITORY[:TAG]]',
    { min: 1, max: 2 },
  );
  if (/^[a-z]+:\/\//i.test(positionals[0])) throw new UsageError(`import from a URL (${positionals[0]}) is not supported: download it and import the file`);
  const input = openInput(positionals[0], 'the root filesystem tar');
  const [repo, tag] = positionals[1] ? splitTag(positionals[1]) : [undefined, undefined];
  const qs = new URLSearchParams({ fromSrc: '-' });
  if (repo) qs.set('repo', repo);
  if (tag) qs.set('tag', tag);
  if (values.message) qs.set('message', values.message);
  for (const c of values.change ?? []) qs.append('changes', c);
  const res = await client.request(`/images/create?${qs}`, { method: 'POST', body: input, headers: { 'Content-Type': 'application/x-tar' } });
  const error = await readMessages(res, (msg) => {
    if (msg.status) out.write(`${msg.status}\n`);
  });
  if (error) {
    process.stderr.write(`${error}\n`);
    return 1;
  }
  return 0;
}
