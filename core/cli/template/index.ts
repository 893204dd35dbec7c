/**
 * Docker's --format: Go templates over the API's JSON or over formatter contexts, `table` formats
 * with a header row and tabwriter columns, `json` for one JSON object per line.
 */
import { compileTemplate, type Template } from './exec';
import { DOCKER_FUNCS, HEADER_FUNCS } from './funcs';
import { tabwrite } from './tabwriter';
import { TemplateError } from './errors';

export { compileTemplate, TemplateError, tabwrite };
import { STRUCT } from './fmt';

export { STRUCT };

/** docker's preFormat: drop the `table` prefix, trim spaces, turn literal \t and \n into tabs and newlines. */
function prepare(format: string): { body: string; table: boolean } {
  const table = format.startsWith('table');
  const body = (table ? format.slice('table'.length) : format).trim().replace(/\\t/g, '\t').replace(/\\n/g, '\n');
  return { body, table };
}

/** A `--format` value ready to render rows: each item on its own line, a header row for tables. */
export class Format {
  readonly table: boolean;
  private readonly row: Template;
  private readonly header: Template;

  constructor(format: string) {
    const { body, table } = prepare(format === 'json' ? '{{json .}}' : format);
    this.table = table;
    this.row = compileTemplate(body, DOCKER_FUNCS);
    this.header = compileTemplate(body, HEADER_FUNCS);
  }

  /**
   * Render `items`; `headers` maps field names to the column titles docker prints (or to a
   * method, as `.Label "k"` heads its column with the key). A header that fails ends the header
   * row there, as docker's does.
   */
  render(items: unknown[], headers: Record<string, string | ((arg: string) => string)> = {}): string {
    const rows = items.map((i) => this.row.execute(i) + '\n').join('');
    if (!this.table) return rows;
    const context = Object.defineProperty({ ...headers }, STRUCT, { value: 'header' });
    return tabwrite(this.header.executePartial(context) + '\n' + rows);
  }
}

/** `inspect -f`: the template applied to each object, one result per line. */
export function renderEach(format: string, items: unknown[]): string {
  const t = compileTemplate(format.replace(/\\t/g, '\t').replace(/\\n/g, '\n'));
  return items.map((i) => t.execute(i) + '\n').join('');
}
