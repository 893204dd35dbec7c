import type { CommandContext } from '../main';
import { parse, registryHost } from '../args';
import { registryAuthHeader } from '../credentials';
import { ProgressRenderer, ago, shortId, table, truncate } from '../render';
import { humanSize } from '../../util/format';

export async function pull({ client, argv, out }: CommandContext): Promise<number> {
  const { values, positionals } = parse(argv, { quiet: { type: 'boolean', short: 'q' }, platform: { type: 'string' }, 'all-tags': { type: 'boolean', short: 'a' } }, 'berth pull [-q] [--platform os/arch] NAME[:TAG|@DIGEST]', { min: 1, max: 1 });
  const name = positionals[0];
  const at = name.lastIndexOf('@');
  const colon = name.lastIndexOf(':');
  const hasTag = at < 0 && colon > name.lastIndexOf('/');
  const [fromImage, tag] = at > 0 ? [name.slice(0, at), name.slice(at + 1)] : hasTag ? [name.slice(0, colon), name.slice(colon + 1)] : [name, 'latest'];
  const quiet = !!values.quiet;
  const renderer = new ProgressRenderer(out);
  if (!quiet && at < 0 && !hasTag) out.write('Using default tag: latest\n');
  const query = { fromImage, tag, platform: values.platform };
  try {
    await client.stream('/images/create', { method: 'POST', query, headers: registryAuthHeader(registryHost(name)) }, (msg) => {
      if (!quiet || msg.error || msg.errorDetail) renderer.handle(msg);
    });
  } catch (err) {
    // The stream broke off (berthd stopped or crashed mid-pull): say so rather than "aborted".
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ECONNRESET' && (err as Error).message !== 'aborted') throw err;
    process.stderr.write(`Error: berthd at unix://${client.socketPath} closed the connection before the pull of ${name} finished (did it stop?)\n`);
    return 1;
  }
  if (renderer.error) {
    process.stderr.write(`Error response from daemon: ${renderer.error}\n`);
    return 1;
  }
  out.write(qualified(fromImage) + (at > 0 ? `@${tag}` : `:${tag}`) + '\n');
  return 0;
}

/** Docker prints the fully qualified name after a pull: docker.io/library/busybox:latest. */
function qualified(name: string): string {
  if (registryHost(name) !== 'docker.io' || name.startsWith('docker.io/')) return name;
  return `docker.io/${name.includes('/') ? name : `library/${name}`}`;
}

export async function images({ client, argv, out }: CommandContext): Promise<void> {
  const { values, positionals } = parse(argv, { quiet: { type: 'boolean', short: 'q' }, all: { type: 'boolean', short: 'a' }, 'no-trunc': { type: 'boolean' }, digests: { type: 'boolean' }, filter: { type: 'string', short: 'f', multiple: true } }, 'berth images [-q] [-a] [--digests] [--no-trunc] [REPOSITORY[:TAG]]', { max: 1 });
  const filters: Record<string, string[]> = {};
  for (const f of values.filter ?? []) {
    const [k, v] = f.split('=');
    (filters[k] ??= []).push(v ?? '');
  }
  if (positionals[0]) filters.reference = [positionals[0]];
  const list = await client.json<any[]>('/images/json', { query: { all: values.all, filters: Object.keys(filters).length ? JSON.stringify(filters) : undefined } });
  const id = (i: any) => (values['no-trunc'] ? i.Id : shortId(i.Id));
  if (values.quiet) {
    out.write([...new Set(list.map(id))].map((s) => s + '\n').join(''));
    return;
  }
  const rows: string[][] = [];
  for (const img of list) {
    const digestOf = (repo: string) => img.RepoDigests?.find((d: string) => d.startsWith(repo + '@'))?.split('@')[1] ?? '<none>';
    const named: [string, string][] = img.RepoTags?.length
      ? img.RepoTags.map((t: string) => [t.slice(0, t.lastIndexOf(':')), t.slice(t.lastIndexOf(':') + 1)])
      : // Pulled by digest only: Docker still shows the repository, with a <none> tag.
        [...new Set<string>((img.RepoDigests ?? []).map((d: string) => d.split('@')[0]))].map((repo) => [repo, '<none>']);
    if (!named.length) named.push(['<none>', '<none>']);
    for (const [repo, tagName] of named) {
      rows.push([repo, tagName, ...(values.digests ? [digestOf(repo)] : []), id(img), ago(img.Created), humanSize(img.Size)]);
    }
  }
  out.write(table(['REPOSITORY', 'TAG', ...(values.digests ? ['DIGEST'] : []), 'IMAGE ID', 'CREATED', 'SIZE'], rows));
}

export async function inspect({ client, argv, out }: CommandContext): Promise<number> {
  const { positionals } = parse(argv, { format: { type: 'string', short: 'f' } }, 'berth image inspect IMAGE [IMAGE...]', { min: 1 });
  const found = [];
  let code = 0;
  for (const name of positionals) {
    try {
      found.push(await client.json(`/images/${encodeURIComponent(name)}/json`));
    } catch (err) {
      process.stderr.write(`Error: ${(err as Error).message}\n`);
      code = 1;
    }
  }
  out.write(JSON.stringify(found, null, 4) + '\n');
  return code;
}

export async function history({ client, argv, out }: CommandContext): Promise<void> {
  const { values, positionals } = parse(argv, { 'no-trunc': { type: 'boolean' }, quiet: { type: 'boolean', short: 'q' }, human: { type: 'boolean', short: 'H' } }, 'berth history [--no-trunc] [-q] IMAGE', { min: 1, max: 1 });
  const rows = await client.json<any[]>(`/images/${encodeURIComponent(positionals[0])}/history`);
  const id = (s: string) => (s === '<missing>' || values['no-trunc'] ? s : shortId(s));
  if (values.quiet) {
    out.write(rows.map((r) => id(r.Id) + '\n').join(''));
    return;
  }
  out.write(
    table(
      ['IMAGE', 'CREATED', 'CREATED BY', 'SIZE', 'COMMENT'],
      rows.map((r) => [id(r.Id), ago(r.Created), values['no-trunc'] ? r.CreatedBy : truncate(r.CreatedBy.replace(/\s+/g, ' '), 45), humanSize(r.Size), r.Comment]),
    ),
  );
}

export async function tag({ client, argv }: CommandContext): Promise<void> {
  const { positionals } = parse(argv, {}, 'berth tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]', { min: 2, max: 2 });
  const [source, target] = positionals;
  const colon = target.lastIndexOf(':');
  const [repo, t] = colon > target.lastIndexOf('/') ? [target.slice(0, colon), target.slice(colon + 1)] : [target, 'latest'];
  await client.request(`/images/${encodeURIComponent(source)}/tag`, { method: 'POST', query: { repo, tag: t } });
}

export async function rmi({ client, argv, out }: CommandContext): Promise<number> {
  const { values, positionals } = parse(argv, { force: { type: 'boolean', short: 'f' }, 'no-prune': { type: 'boolean' } }, 'berth rmi [-f] IMAGE [IMAGE...]', { min: 1 });
  let code = 0;
  for (const name of positionals) {
    try {
      const results = await client.json<any[]>(`/images/${encodeURIComponent(name)}`, { method: 'DELETE', query: { force: values.force } });
      for (const r of results) out.write(r.Untagged ? `Untagged: ${r.Untagged}\n` : `Deleted: ${r.Deleted}\n`);
    } catch (err) {
      process.stderr.write(`Error response from daemon: ${(err as Error).message}\n`);
      code = 1;
    }
  }
  return code;
}
