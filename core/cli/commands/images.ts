import type { CommandContext } from '../main';
import { filtersQuery, parse, registryHost } from '../args';
import { registryAuthHeader } from '../credentials';
import { ProgressRenderer, ago, shortId, table, truncate } from '../render';
import { IMAGE_HEADERS, IMAGE_TABLE, IMAGE_TABLE_DIGESTS, imageContexts } from '../formatters';
import { Format } from '../template';
import { printInspected } from '../render';
import { humanSize } from '../../util/format';

export async function pull({ client, argv, out }: CommandContext): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      quiet: { type: 'boolean', short: 'q', help: 'Suppress verbose output' },
      platform: { type: 'string', help: 'Set platform if server is multi-platform capable' },
      'all-tags': { type: 'boolean', short: 'a', help: 'Download all tagged images in the repository' },
    },
    'berth pull [-q] [--platform os/arch] NAME[:TAG|@DIGEST]',
    { min: 1, max: 1 },
  );
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
  const { values, positionals } = parse(
    argv,
    {
      all: { type: 'boolean', short: 'a', help: 'Show all images (default hides intermediate images)' },
      digests: { type: 'boolean', help: 'Show digests' },
      filter: { type: 'string', short: 'f', multiple: true, help: 'Filter output based on conditions provided' },
      format: { type: 'string', help: 'Pretty-print images using a Go template' },
      'no-trunc': { type: 'boolean', help: "Don't truncate output" },
      quiet: { type: 'boolean', short: 'q', help: 'Only show image IDs' },
    },
    'berth images [OPTIONS] [REPOSITORY[:TAG]]',
    { max: 1 },
  );
  const filters = [...(values.filter ?? []), ...(positionals[0] ? [`reference=${positionals[0]}`] : [])];
  const list = await client.json<any[]>('/images/json', { query: { all: values.all, filters: filtersQuery(filters) } });
  const trunc = !values['no-trunc'];
  if (values.quiet && !values.format) {
    // One line per image, however many names it has.
    out.write([...new Set(list.map((i) => (trunc ? i.Id.replace(/^sha256:/, '').slice(0, 12) : i.Id)))].map((s) => s + '\n').join(''));
    return;
  }
  let format = values.format ?? 'table';
  if (format === 'table') format = values.digests ? IMAGE_TABLE_DIGESTS : IMAGE_TABLE;
  const template = new Format(format);
  const digests = !!values.digests || format.includes('.Digest');
  out.write(
    template.render(
      list.flatMap((img) => imageContexts(img, { trunc, digests })),
      IMAGE_HEADERS,
    ),
  );
}

export async function inspect({ client, argv, out }: CommandContext): Promise<number> {
  const { values, positionals } = parse(argv, { format: { type: 'string', short: 'f', help: 'Format output using a custom template' } }, 'berth image inspect [OPTIONS] IMAGE [IMAGE...]', { min: 1 });
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
  out.write(printInspected(found, values.format));
  return code;
}

export async function history({ client, argv, out }: CommandContext): Promise<void> {
  const { values, positionals } = parse(
    argv,
    {
      'no-trunc': { type: 'boolean', help: "Don't truncate output" },
      quiet: { type: 'boolean', short: 'q', help: 'Only show image IDs' },
      human: { type: 'boolean', short: 'H', help: 'Print sizes and dates in human readable format' },
    },
    'berth history [OPTIONS] IMAGE',
    { min: 1, max: 1 },
  );
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
  const { values, positionals } = parse(
    argv,
    { force: { type: 'boolean', short: 'f', help: 'Force removal of the image' }, 'no-prune': { type: 'boolean', help: 'Do not delete untagged parents' } },
    'berth rmi [OPTIONS] IMAGE [IMAGE...]',
    { min: 1 },
  );
  let code = 0;
  for (const name of positionals) {
    try {
      const results = await client.json<any[]>(`/images/${encodeURIComponent(name)}`, { method: 'DELETE', query: { force: values.force, noprune: values['no-prune'] } });
      for (const r of results) out.write(r.Untagged ? `Untagged: ${r.Untagged}\n` : `Deleted: ${r.Deleted}\n`);
    } catch (err) {
      process.stderr.write(`Error response from daemon: ${(err as Error).message}\n`);
      code = 1;
    }
  }
  return code;
}
