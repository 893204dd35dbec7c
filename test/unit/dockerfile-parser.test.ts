/**
 * The Dockerfile parser (core/build/dockerfile.ts) and ARG scoping (core/build/args.ts):
 * continuations, the escape directive, exec vs shell form, flags, stages, and errors that name
 * the file and the line.
 */
import { describe, expect, it } from 'vitest';
import { parseDockerfile, DockerfileError } from '../../core/build/dockerfile';
import { baseName, declareArgs, metaArgValues, stageLookup, type ArgValues } from '../../core/build/args';
import { processWord } from '../../core/build/words';

const parse = (text: string) => parseDockerfile(text);

describe('Dockerfile parser', () => {
  it('joins continued lines, skips comments (also inside continuations) and blank lines', () => {
    const df = parse(`# leading comment
FROM busybox

RUN echo hello \\
    world \\
# a comment inside the continuation
    again
  run   echo lower-case
`);
    const [run1, run2] = df.stages[0].instructions;
    expect(run1.name).toBe('RUN');
    // The escape is dropped and the next line appended as it is (its indentation kept).
    expect(run1.args).toBe('echo hello     world     again');
    expect(run1.line).toBe(4);
    expect(run2.name).toBe('RUN');
    expect(run2.args).toBe('echo lower-case');
    expect(run2.line).toBe(8);
  });

  it('honours the escape directive: backtick continues lines, backslash is literal', () => {
    const df = parse('# escape=`\nFROM busybox\nRUN dir c:\\ `\n  && echo done\nCOPY a\\b c:\\dest\\\n');
    expect(df.escape).toBe('`');
    const [run, copy] = df.stages[0].instructions;
    expect(run.args).toBe('dir c:\\   && echo done');
    expect(copy.args).toBe('a\\b c:\\dest\\');
  });

  it('treats directives only at the very top, and refuses a bad escape', () => {
    // After an instruction, `# escape=` is just a comment: backslash still continues lines.
    const late = parse('FROM busybox\n# escape=`\nRUN a \\\n b\n');
    expect(late.escape).toBe('\\');
    expect(late.stages[0].instructions[0].args).toBe('a  b');
    expect(() => parse('# escape=x\nFROM busybox\n')).toThrow('Dockerfile:1: invalid escape token');
    // Unknown directives are comments.
    expect(parse('# foo=bar\nFROM busybox\n').stages).toHaveLength(1);
  });

  it('tells the exec (JSON) form from the shell form', () => {
    const df = parse(`FROM busybox
CMD ["echo", "a b"]
ENTRYPOINT echo shell form
RUN ["not", json]
SHELL ["/bin/ash", "-eo", "pipefail", "-c"]
COPY ["src file", "/dest dir/"]
`);
    const [cmd, ep, run, shell, copy] = df.stages[0].instructions;
    expect(cmd.json).toEqual(['echo', 'a b']);
    expect(ep.json).toBeUndefined();
    expect(ep.args).toBe('echo shell form');
    // Not valid JSON: the shell form, as in Docker.
    expect(run.json).toBeUndefined();
    expect(shell.json).toEqual(['/bin/ash', '-eo', 'pipefail', '-c']);
    expect(copy.json).toEqual(['src file', '/dest dir/']);
    expect(() => parse('FROM busybox\nSHELL /bin/sh -c\n')).toThrow('Dockerfile:2: SHELL requires the arguments to be in JSON form');
  });

  it('splits flags off, and refuses unknown ones by name', () => {
    const df = parse('FROM --platform=linux/amd64 busybox AS Base\nCOPY --from=base --chown=1:2 a /b\n');
    expect(df.stages[0].from.flags).toEqual({ platform: 'linux/amd64' });
    expect(df.stages[0].name).toBe('base');
    expect(df.stages[0].instructions[0].flags).toEqual({ from: 'base', chown: '1:2' });
    expect(df.stages[0].instructions[0].args).toBe('a /b');
    expect(() => parse('FROM busybox\nCOPY --frm=x a b\n')).toThrow('Dockerfile:2: unknown flag: --frm');
  });

  it('names the line of an unknown instruction and other mistakes', () => {
    const text = 'FROM busybox\n\n# comment\nRUN true\nENV A=1\n\nRUNN echo\n';
    expect(() => parse(text)).toThrow(DockerfileError);
    expect(() => parse(text)).toThrow('Dockerfile:7: unknown instruction: RUNN');
    expect(() => parseDockerfile('FROM a\nCOPY onlyone\n', 'app.Dockerfile')).toThrow('app.Dockerfile:2: COPY requires at least two arguments');
    expect(() => parse('RUN echo\nFROM busybox\n')).toThrow('Dockerfile:1: RUN before the first FROM');
    expect(() => parse('# only a comment\n')).toThrow(/no FROM instruction/);
    expect(() => parse('FROM a AS x\nFROM b AS x\n')).toThrow('Dockerfile:2: duplicate stage name "x"');
    expect(() => parse('FROM a AS\n')).toThrow('Dockerfile:1: FROM requires either one or three arguments');
  });

  it('parses ONBUILD triggers as instructions', () => {
    const df = parse('FROM busybox\nONBUILD RUN echo triggered\n');
    const ins = df.stages[0].instructions[0];
    expect(ins.inner?.name).toBe('RUN');
    expect(ins.inner?.args).toBe('echo triggered');
    expect(() => parse('FROM busybox\nONBUILD FROM x\n')).toThrow("FROM isn't allowed as an ONBUILD trigger");
  });
});

describe('ARG scoping', () => {
  const df = parse(`ARG VERSION=1.36
ARG REGISTRY
FROM \${REGISTRY:-docker.io}/busybox:\${VERSION} AS one
ARG VERSION
ARG LOCAL=\${VERSION}-local
FROM busybox:\${VERSION}
ARG OTHER
`);

  it('meta args (before FROM) substitute FROM lines, build args win over defaults', () => {
    const consumed = new Set<string>();
    const meta = metaArgValues(df, new Map(), consumed);
    expect(baseName(df.stages[0], meta, '\\')).toBe('docker.io/busybox:1.36');
    const withArgs = metaArgValues(
      df,
      new Map([
        ['VERSION', '1.37'],
        ['REGISTRY', '127.0.0.1:5000'],
      ]),
    );
    expect(baseName(df.stages[0], withArgs, '\\')).toBe('127.0.0.1:5000/busybox:1.37');
    expect(baseName(df.stages[1], withArgs, '\\')).toBe('busybox:1.37');
    expect([...consumed].sort()).toEqual(['REGISTRY', 'VERSION']);
  });

  it('a stage sees a meta arg only after declaring it again, and then with its value', () => {
    const meta = metaArgValues(df, new Map());
    const stage: ArgValues = new Map();
    const lookup = stageLookup([], stage);
    expect(lookup('VERSION')).toBeUndefined();
    const consumed = new Set<string>();
    const [argVersion, argLocal] = df.stages[0].instructions;
    declareArgs(argVersion, '\\', stage, lookup, new Map(), consumed, meta);
    expect(lookup('VERSION')).toBe('1.36');
    declareArgs(argLocal, '\\', stage, lookup, new Map(), consumed, meta);
    expect(lookup('LOCAL')).toBe('1.36-local');
    // The next stage starts without them.
    const next: ArgValues = new Map();
    expect(stageLookup([], next)('VERSION')).toBeUndefined();
    declareArgs(df.stages[1].instructions[0], '\\', next, stageLookup([], next), new Map([['OTHER', 'given']]), consumed, meta);
    expect(next.get('OTHER')).toBe('given');
  });

  it('ENV wins over an ARG of the same name', () => {
    const args: ArgValues = new Map([
      ['MODE', 'from-arg'],
      ['ONLY_ARG', 'a'],
    ]);
    const lookup = stageLookup(['PATH=/bin', 'MODE=from-env'], args);
    expect(processWord('$MODE/${ONLY_ARG}', lookup)).toBe('from-env/a');
  });
});
