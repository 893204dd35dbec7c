/**
 * The house rules of DESIGN.md section 1, checked on the import graph of every .ts file under
 * core/ and plugins/ (static imports, `export ... from`, `import type`, require() and import()
 * with a literal specifier):
 * - core never imports plugins;
 * - a plugin imports only its own files, core/plugin (`berth/plugin`) and core/contracts;
 * - the CLI loads no engine code: everything it can reach stays inside core/cli plus a few pure
 *   helpers, and its packages are Node's own plus tar-stream;
 * - the folders of core form no cycle (each folder depends on ones below it);
 * - errors are thrown as kinds (NotFoundError, ConflictError ...), not as `new BerthError(msg, 409)`:
 *   the status of a kind is in one table (HTTP_STATUS);
 * - no source file is longer than MAX_LINES: a file that long holds more than one thing.
 * Each check is also run on a small made-up graph that breaks it, so a check that silently finds
 * nothing fails here too.
 */
import * as fs from 'node:fs';
import { builtinModules } from 'node:module';
import * as path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const REPO = path.resolve(__dirname, '..', '..');

/** What the CLI may reach outside core/cli: pure helpers with no engine state. */
const CLI_ALLOWED_FILES = ['core/util/format.ts', 'core/build/ignore.ts'];
const CLI_ALLOWED_PACKAGES = ['tar-stream'];

/** File (repo-relative) -> what it imports: repo-relative files, or bare package specifiers. */
type ImportGraph = Map<string, { files: string[]; packages: string[] }>;

function tsFiles(dir: string): string[] {
  return fs.readdirSync(path.join(REPO, dir), { withFileTypes: true }).flatMap((e) => {
    const rel = `${dir}/${e.name}`;
    if (e.isDirectory()) return tsFiles(rel);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [rel] : [];
  });
}

/** A relative specifier as the repo-relative .ts file it names (`./x`, `./x.js`, `./dir`). */
function resolveRelative(from: string, specifier: string): string {
  const base = path.posix.join(path.posix.dirname(from), specifier).replace(/\.js$/, '');
  for (const candidate of [`${base}.ts`, `${base}/index.ts`]) {
    if (fs.existsSync(path.join(REPO, candidate))) return candidate;
  }
  throw new Error(`${from}: cannot resolve import '${specifier}'`);
}

function buildGraph(files: string[]): ImportGraph {
  const graph: ImportGraph = new Map();
  for (const file of files) {
    const info = ts.preProcessFile(fs.readFileSync(path.join(REPO, file), 'utf8'), true, true);
    const entry = { files: [] as string[], packages: [] as string[] };
    for (const { fileName } of info.importedFiles) {
      if (fileName.startsWith('.')) entry.files.push(resolveRelative(file, fileName));
      else entry.packages.push(fileName);
    }
    graph.set(file, entry);
  }
  return graph;
}

/** `core/api/routes/x.ts` -> `core/api`; a file directly in core/ (core/plugin.ts) is its own unit. */
function coreFolder(file: string): string {
  const parts = file.split('/');
  return parts.length > 2 ? `${parts[0]}/${parts[1]}` : file;
}

function pluginFolder(file: string): string {
  return file.split('/').slice(0, 2).join('/');
}

function coreImportsPlugins(graph: ImportGraph): string[] {
  const out: string[] = [];
  for (const [file, { files }] of graph) {
    if (!file.startsWith('core/')) continue;
    for (const target of files) if (target.startsWith('plugins/')) out.push(`${file} -> ${target}`);
  }
  return out;
}

function pluginImportsOutsideApi(graph: ImportGraph): string[] {
  const out: string[] = [];
  for (const [file, { files, packages }] of graph) {
    if (!file.startsWith('plugins/')) continue;
    for (const target of files) {
      const ok = pluginFolder(target) === pluginFolder(file) || target === 'core/plugin.ts' || target.startsWith('core/contracts/');
      if (!ok) out.push(`${file} -> ${target}`);
    }
    for (const pkg of packages) if (pkg.startsWith('berth/') && pkg !== 'berth/plugin') out.push(`${file} -> ${pkg}`);
  }
  return out;
}

function isNodeBuiltin(specifier: string): boolean {
  return specifier.startsWith('node:') || builtinModules.includes(specifier.split('/')[0]);
}

/** Everything the CLI can load, from every file of core/cli (main.ts requires commands by name). */
function cliLoadsEngineCode(graph: ImportGraph): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const queue = [...graph.keys()].filter((f) => f.startsWith('core/cli/'));
  while (queue.length) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const entry = graph.get(file);
    if (!entry) throw new Error(`${file} is not in the import graph`);
    for (const target of entry.files) {
      if (target.startsWith('core/cli/') || CLI_ALLOWED_FILES.includes(target)) queue.push(target);
      else out.push(`${file} -> ${target}`);
    }
    for (const pkg of entry.packages) {
      if (!isNodeBuiltin(pkg) && !CLI_ALLOWED_PACKAGES.includes(pkg)) out.push(`${file} -> ${pkg}`);
    }
  }
  return out;
}

/** The files `from` loads with it: its top-level value imports, followed (lazy requires and type imports are not). */
function eagerlyLoaded(from: string): Set<string> {
  const seen = new Set<string>();
  const queue = [from];
  while (queue.length) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const source = ts.createSourceFile(file, fs.readFileSync(path.join(REPO, file), 'utf8'), ts.ScriptTarget.Latest);
    for (const st of source.statements) {
      const isValueImport = ts.isImportDeclaration(st) && !st.importClause?.isTypeOnly;
      const spec = isValueImport || (ts.isExportDeclaration(st) && !st.isTypeOnly) ? st.moduleSpecifier : undefined;
      if (spec && ts.isStringLiteral(spec) && spec.text.startsWith('.')) queue.push(resolveRelative(file, spec.text));
    }
  }
  return seen;
}

/** Cycles between core folders: each strongly connected component of the folder graph, with the edges inside it. */
function coreFolderCycles(graph: ImportGraph): string[][] {
  const edges = new Map<string, Map<string, string>>(); // folder -> folder -> one example file edge
  for (const [file, { files }] of graph) {
    if (!file.startsWith('core/')) continue;
    const from = coreFolder(file);
    for (const target of files) {
      const to = coreFolder(target);
      if (!target.startsWith('core/') || to === from) continue;
      if (!edges.has(from)) edges.set(from, new Map());
      if (!edges.get(from)!.has(to)) edges.get(from)!.set(to, `${file} -> ${target}`);
    }
  }
  // Tarjan's algorithm.
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  const visit = (v: string) => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    onStack.add(v);
    for (const w of edges.get(v)?.keys() ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1) components.push(component);
    }
  };
  for (const v of edges.keys()) if (!index.has(v)) visit(v);
  return components.map((c) => [...edges].filter(([from]) => c.includes(from)).flatMap(([, tos]) => [...tos].filter(([to]) => c.includes(to)).map(([, example]) => example)));
}

/** `new BerthError(msg, <a number written out>)`: a status picked at the throw site instead of a kind. */
function statusesPickedAtThrow(files: Map<string, string>): string[] {
  const out: string[] = [];
  for (const [file, text] of files) {
    const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest);
    const hasNumber = (node: ts.Node): boolean => ts.isNumericLiteral(node) || ts.forEachChild(node, hasNumber) === true;
    const visit = (node: ts.Node) => {
      if (ts.isNewExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'BerthError') {
        const status = node.arguments?.[1];
        if (status && hasNumber(status)) out.push(`${file}:${source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1}`);
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return out;
}

function fakeGraph(edges: Record<string, string[]>): ImportGraph {
  return new Map(Object.entries(edges).map(([file, targets]) => [file, { files: targets.filter((t) => /^(core|plugins)\//.test(t)), packages: targets.filter((t) => !/^(core|plugins)\//.test(t)) }]));
}

/** Lines a source file may have (core, plugins, examples). */
const MAX_LINES = 400;

/** Files of `texts` longer than `max` lines, as `file (N lines)`. */
function oversized(texts: Map<string, string>, max: number): string[] {
  return [...texts].flatMap(([file, text]) => {
    const lines = text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
    return lines > max ? [`${file} (${lines} lines)`] : [];
  });
}

describe('house rules', () => {
  const sources = [...tsFiles('core'), ...tsFiles('plugins')];
  const graph = buildGraph(sources);

  it('sees the whole tree', () => {
    expect(graph.size).toBeGreaterThan(150);
    expect(graph.get('core/daemon/berthd.ts')?.files).toContain('core/kernel/engine.ts');
    expect(graph.get('plugins/runtime-native/runtime.ts')?.files).toContain('core/plugin.ts');
  });

  it('core never imports plugins', () => {
    expect(coreImportsPlugins(graph)).toEqual([]);
    expect(coreImportsPlugins(fakeGraph({ 'core/kernel/engine.ts': ['plugins/storage-vfs/driver.ts'] }))).toHaveLength(1);
  });

  it('plugins import only their own files, berth/plugin and core/contracts', () => {
    expect(pluginImportsOutsideApi(graph)).toEqual([]);
    const bad = fakeGraph({
      'plugins/storage-vfs/driver.ts': ['plugins/storage-vfs/copy.ts', 'core/plugin.ts', 'core/contracts/storage.ts', 'core/layers/index.ts'],
      'plugins/runtime-oci/runtime.ts': ['plugins/runtime-native/runtime.ts', 'berth/testing'],
    });
    expect(pluginImportsOutsideApi(bad)).toEqual([
      'plugins/storage-vfs/driver.ts -> core/layers/index.ts',
      'plugins/runtime-oci/runtime.ts -> plugins/runtime-native/runtime.ts',
      'plugins/runtime-oci/runtime.ts -> berth/testing',
    ]);
  });

  it('the CLI loads no engine code', () => {
    expect(cliLoadsEngineCode(graph)).toEqual([]);
    const bad = fakeGraph({
      'core/cli/main.ts': ['core/cli/client.ts', 'node:fs'],
      'core/cli/client.ts': ['core/util/format.ts', 'core/kernel/config.ts', 'tsyringe'],
      'core/util/format.ts': [],
    });
    expect(cliLoadsEngineCode(bad)).toEqual(['core/cli/client.ts -> core/kernel/config.ts', 'core/cli/client.ts -> tsyringe']);
  });

  // `berth run` is the latency the bench measures: the template engine is a third of the CLI's
  // module load, and only the commands that print through templates load it (render.ts, lazily).
  it('berth run loads no template engine', () => {
    const loaded = [...eagerlyLoaded('core/cli/main.ts'), ...eagerlyLoaded('core/cli/commands/containers.ts')];
    expect(loaded.filter((f) => f.startsWith('core/cli/template/') && f !== 'core/cli/template/errors.ts')).toEqual([]);
    expect(loaded).toContain('core/cli/commands/run-flags.ts');
  });

  it('core folders form no cycle', () => {
    expect(coreFolderCycles(graph)).toEqual([]);
    const bad = fakeGraph({
      'core/api/router.ts': ['core/kernel/engine.ts'],
      'core/kernel/engine.ts': ['core/images/store.ts'],
      'core/images/store.ts': ['core/api/progress.ts', 'core/util/fs.ts'],
    });
    expect(coreFolderCycles(bad)).toEqual([['core/api/router.ts -> core/kernel/engine.ts', 'core/kernel/engine.ts -> core/images/store.ts', 'core/images/store.ts -> core/api/progress.ts']]);
  });

  it('errors are thrown as kinds, not with a status picked at the throw', () => {
    expect(statusesPickedAtThrow(new Map(sources.map((f) => [f, fs.readFileSync(path.join(REPO, f), 'utf8')])))).toEqual([]);
    const bad = new Map([
      ['core/a.ts', "throw new BerthError('no', 409);\nthrow new BerthError(`x`, cond ? 400 : 500);\nthrow new BerthError('ok');"],
      ['core/b.ts', 'throw new BerthError(`${e.message}`, e.status ?? HTTP_STATUS.Internal, { cause: e });'],
    ]);
    expect(statusesPickedAtThrow(bad)).toEqual(['core/a.ts:1', 'core/a.ts:2']);
  });

  it(`no source file is longer than ${MAX_LINES} lines`, () => {
    const files = [...sources, ...tsFiles('examples')];
    expect(oversized(new Map(files.map((f) => [f, fs.readFileSync(path.join(REPO, f), 'utf8')])), MAX_LINES)).toEqual([]);
    expect(
      oversized(
        new Map([
          ['core/a.ts', 'x\n'.repeat(401)],
          ['core/b.ts', 'x\n'.repeat(400)],
        ]),
        MAX_LINES,
      ),
    ).toEqual(['core/a.ts (401 lines)']);
  });
});
