import type { CommandContext } from '../main';
import { filtersQuery, parse } from '../args';
import { CONTAINER_HEADERS, CONTAINER_TABLE, containerContext } from '../formatters';
import { Format } from '../template';

export async function ps({ client, argv, out }: CommandContext): Promise<void> {
  const { values } = parse(
    argv,
    {
      all: { type: 'boolean', short: 'a', help: 'Show all containers (default shows just running)' },
      filter: { type: 'string', short: 'f', multiple: true, help: 'Filter output based on conditions provided' },
      format: { type: 'string', help: 'Pretty-print containers using a Go template' },
      last: { type: 'string', short: 'n', help: 'Show n last created containers (includes all states)', default: '-1' },
      latest: { type: 'boolean', short: 'l', help: 'Show the latest created container (includes all states)' },
      'no-trunc': { type: 'boolean', help: "Don't truncate output" },
      quiet: { type: 'boolean', short: 'q', help: 'Only display container IDs' },
      size: { type: 'boolean', short: 's', help: 'Display total file sizes' },
    },
    'berth ps [OPTIONS]',
    { max: 0 },
  );
  // docker: -q and -s shape the default table only; a format of one's own is taken as written.
  let format = values.format ?? 'table';
  if (format === 'table') format = values.quiet ? '{{.ID}}' : values.size ? `${CONTAINER_TABLE}\t{{.Size}}` : CONTAINER_TABLE;
  const template = new Format(format);
  const limit = values.latest ? 1 : values.last !== undefined ? Number(values.last) : undefined;
  const query = {
    all: values.all || (limit !== undefined && limit > 0),
    limit: limit !== undefined && limit > 0 ? limit : undefined,
    size: values.size || format.includes('.Size') || undefined,
    filters: filtersQuery(values.filter),
  };
  const list = await client.json<any[]>('/containers/json', { query });
  out.write(
    template.render(
      list.map((c) => containerContext(c, !values['no-trunc'])),
      CONTAINER_HEADERS,
    ),
  );
}
