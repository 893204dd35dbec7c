/**
 * The Go template evaluator behind --format, checked against what Go's own text/template printed
 * for the same data and template (Go 1.19 from Debian, with docker's template functions; the
 * expectations below are its output, pasted, not ours).
 */
import { describe, expect, it } from 'vitest';
import { Format, TemplateError, compileTemplate, renderEach, STRUCT, tabwrite } from '../../core/cli/template';

const DATA = {
  Id: '4f3b2a1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a',
  Name: '/web',
  Args: ['-c', 'echo hi'],
  RestartCount: 0,
  State: {
    Status: 'running',
    Running: true,
    Pid: 4242,
    ExitCode: 0,
    Health: null,
  },
  Config: {
    Hostname: '4f3b2a1c0d9e',
    Env: ['PATH=/bin', 'A=1'],
    Cmd: ['sh', '-c', 'echo hi'],
    Labels: {
      'com.example.tier': 'web',
      app: 'shop',
    },
    Tty: false,
    StopTimeout: 10,
  },
  Mounts: [
    {
      Type: 'volume',
      Name: 'data',
      Source: '/var/lib/berth/volumes/data/_data',
      Destination: '/data',
      RW: true,
    },
    {
      Type: 'bind',
      Name: '',
      Source: '/srv',
      Destination: '/srv',
      RW: false,
    },
  ],
  NetworkSettings: {
    IPAddress: '172.17.0.2',
    Networks: {
      bridge: {
        IPAddress: '172.17.0.2',
        Gateway: '172.17.0.1',
      },
      back: {
        IPAddress: '10.1.0.5',
        Gateway: '10.1.0.1',
      },
    },
    Ports: {},
  },
  Ratio: 0.25,
  Big: 1000000,
  Empty: '',
  EmptyList: [],
  Nested: [[1, 2], [3]],
};

/** [template, what Go 1.19's text/template printed, or the error it gave] */
const CASES: [string, { out?: string; err?: string }][] = [
  ['{{.State.Status}}', { out: 'running' }],
  ['{{.Name}}', { out: '/web' }],
  ['{{json .Config}}', { out: '{"Cmd":["sh","-c","echo hi"],"Env":["PATH=/bin","A=1"],"Hostname":"4f3b2a1c0d9e","Labels":{"app":"shop","com.example.tier":"web"},"StopTimeout":10,"Tty":false}' }],
  ['{{json .Config.Labels}}', { out: '{"app":"shop","com.example.tier":"web"}' }],
  ['{{json .State}}', { out: '{"ExitCode":0,"Health":null,"Pid":4242,"Running":true,"Status":"running"}' }],
  ['{{range .Mounts}}{{.Destination}} {{end}}', { out: '/data /srv ' }],
  ['{{range $i, $m := .Mounts}}{{$i}}={{$m.Type}};{{end}}', { out: '0=volume;1=bind;' }],
  ['{{range $k, $v := .Config.Labels}}{{$k}}={{$v}}\n{{end}}', { out: 'app=shop\ncom.example.tier=web\n' }],
  ['{{index .NetworkSettings.Networks "bridge"}}', { out: 'map[Gateway:172.17.0.1 IPAddress:172.17.0.2]' }],
  ['{{(index .NetworkSettings.Networks "bridge").IPAddress}}', { out: '172.17.0.2' }],
  ['{{.NetworkSettings.IPAddress}}', { out: '172.17.0.2' }],
  ['{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}', { out: '10.1.0.5 172.17.0.2 ' }],
  ['{{if .State.Running}}up{{else}}down{{end}}', { out: 'up' }],
  ['{{if eq .State.Status "exited"}}x{{else if eq .State.Status "running"}}r{{else}}?{{end}}', { out: 'r' }],
  ['{{with .Config}}{{.Hostname}}{{end}}', { out: '4f3b2a1c0d9e' }],
  ['{{with .Empty}}yes{{else}}empty{{end}}', { out: 'empty' }],
  ['{{printf "%s" .Name}}', { out: '/web' }],
  ['{{printf "%q %d %v %5s|%-5s| %05d %x %t" .Name .State.Pid .Args "ab" "cd" 42 "hi" true}}', { out: '"/web" 4242 [-c echo hi]    ab|cd   | 00042 6869 true' }],
  ['{{printf "%.2f %v %v %s" .Ratio .Ratio .Big .State.Pid}}', { out: '0.25 0.25 1000000 %!s(int=4242)' }],
  ['{{printf "%d"}}', { out: '%!d(MISSING)' }],
  ['{{printf "%s" 1 2}}', { out: '%!s(int=1)%!(EXTRA int=2)' }],
  ['{{join .Args ","}}', { err: 'template: :1:7: executing "" at <.Args>: wrong type for value; expected []string; got []interface {}', out: '' }],
  ['{{lower "ABC"}} {{upper .Name}} {{title "hello big-world_x y"}}', { out: 'abc /WEB Hello Big-World_x Y' }],
  ['{{split "a,b,c" ","}}', { out: '[a b c]' }],
  ['{{len .Args}} {{len .Config.Labels}} {{len .Name}}', { out: '2 2 4' }],
  ['[{{pad .Name 2 3}}] [{{pad .Empty 2 3}}]', { out: '[  /web   ] []' }],
  ['{{truncate .Id 12}} {{truncate "ab" 5}}', { out: '4f3b2a1c0d9e ab' }],
  ['{{.Name | printf "%s!"}}', { out: '/web!' }],
  ['{{.Config.Cmd | len}}', { out: '3' }],
  ['{{$n := .Name}}{{$n}}{{$n = "x"}} {{$n}}', { out: '/web x' }],
  ['{{$.Name}}', { out: '/web' }],
  ['a  {{- .Name -}}  b', { out: 'a/webb' }],
  ['{{- /* comment */ -}} x', { out: 'x' }],
  ['{{/* c */}}y', { out: 'y' }],
  ['{{eq 1 1}} {{ne 1 2}} {{lt 1 2}} {{gt "b" "a"}} {{le 2 2}} {{ge 1 3}}', { out: 'true true true true true false' }],
  ['{{and 1 0 2}} {{or 0 "" "z"}} {{not 0}} {{and .Name .Empty}} {{or .Empty .Name}}', { out: '0 z true  /web' }],
  ['{{eq .State.Status "a" "running"}}', { out: 'true' }],
  ['{{.Config.Labels}}', { out: 'map[app:shop com.example.tier:web]' }],
  ['{{.Args}}', { out: '[-c echo hi]' }],
  ['{{.Nested}}', { out: '[[1 2] [3]]' }],
  ['{{.State.Health}}', { out: '<no value>' }],
  ['{{.Missing}}', { out: '<no value>' }],
  ['{{.Config.Missing}}', { out: '<no value>' }],
  ['{{.EmptyList}}', { out: '[]' }],
  ['{{range .EmptyList}}x{{else}}none{{end}}', { out: 'none' }],
  ['{{range $i, $e := .Args}}{{if $i}},{{end}}{{$e}}{{end}}', { out: '-c,echo hi' }],
  ['{{range .Args}}{{if eq . "-c"}}{{continue}}{{end}}{{.}}{{end}}', { out: 'echo hi' }],
  ['{{range .Args}}{{.}}{{break}}{{end}}', { out: '-c' }],
  ['{{index .Args 1}}', { out: 'echo hi' }],
  ['{{index .Config.Labels "app"}}', { out: 'shop' }],
  ['{{index .Config.Labels "nope"}}', { out: '<no value>' }],
  ['{{index .Nested 0 1}}', { out: '2' }],
  ['{{slice .Args 1}} {{slice .Name 1 3}}', { out: '[echo hi] we' }],
  ['{{print 1 2 "a" "b" 3}}', { out: '1 2ab3' }],
  ['{{println .Name 1}}', { out: '/web 1\n' }],
  ['{{html "<a&b>"}} {{js "it\'s"}} {{urlquery "a b&c"}}', { out: "&lt;a&amp;b&gt; it\\'s a+b%26c" }],
  ['{{printf "%T %T %T %T %T" 1 "s" .Ratio .Args .Config}}', { out: 'int string float64 []interface {} map[string]interface {}' }],
  ['{{.State.Health.Status}}', { err: 'template: :1:8: executing "" at <.State.Health.Status>: nil pointer evaluating interface {}.Status', out: '' }],
  ['{{.Name.Foo}}', { err: 'template: :1:7: executing "" at <.Name.Foo>: can\'t evaluate field Foo in type interface {}', out: '' }],
  ['{{index .Args 5}}', { err: 'template: :1:2: executing "" at <index .Args 5>: error calling index: index out of range: 5', out: '' }],
  ['{{nosuch .Name}}', { err: 'template: :1: function "nosuch" not defined' }],
  ['{{.Name', { err: 'template: :1: unclosed action' }],
  ['{{if}}x{{end}}', { err: 'template: :1: missing value for if' }],
  ['{{end}}', { err: 'template: :1: unexpected {{end}}' }],
  ['{{range .Args}}', { err: 'template: :1: unexpected EOF' }],
  ['{{.Name | .State}}', { err: 'template: :1:10: executing "" at <.State>: State is not a method but has arguments', out: '' }],
  ['{{eq .Name 1}}', { err: 'template: :1:2: executing "" at <eq .Name 1>: error calling eq: incompatible types for comparison', out: '' }],
  ['{{len 3}}', { err: 'template: :1:2: executing "" at <len 3>: error calling len: len of type int', out: '' }],
  [
    '{{json .Mounts}}',
    { out: '[{"Destination":"/data","Name":"data","RW":true,"Source":"/var/lib/berth/volumes/data/_data","Type":"volume"},{"Destination":"/srv","Name":"","RW":false,"Source":"/srv","Type":"bind"}]' },
  ],
  ['{{json .Nested}} {{json .Ratio}} {{json .Empty}}', { out: '[[1,2],[3]] 0.25 ""' }],
  ['{{printf "%v" .Config.Labels}}', { out: 'map[app:shop com.example.tier:web]' }],
  ['{{define "T"}}<{{.}}>{{end}}{{template "T" .Name}}', { out: '</web>' }],
  ['{{block "B" .Name}}[{{.}}]{{end}}', { out: '[/web]' }],
  ['{{ .Name }}', { out: '/web' }],
  ['{{-3}}', { out: '-3' }],
  ['{{- 3 -}}', { out: '3' }],
  ['{{"quote\\"d\\t"}} {{`raw\\n`}} {{\'a\'}} {{0x1F}} {{1.5}} {{1e3}}', { out: 'quote"d\t raw\\n 97 31 1.5 1000' }],
  ['{{.State.Running | not}}', { out: 'false' }],
  ['{{if and .State.Running (eq .State.Pid 4242)}}ok{{end}}', { out: 'ok' }],
  ['{{range $k, $v := .NetworkSettings.Networks}}{{$k}}:{{$v.Gateway}} {{end}}', { out: 'back:10.1.0.1 bridge:172.17.0.1 ' }],
  ['{{$x := 1}}{{if true}}{{$x := 2}}{{$x}}{{end}}{{$x}}', { out: '21' }],
  ['{{$x := 1}}{{if true}}{{$x = 2}}{{end}}{{$x}}', { out: '2' }],
  ['{{printf "%6.2f|%-8v|%+d|%x|%X|%o|%b|%c|%e|%g" 3.14159 "ab" 5 255 255 8 5 65 1234.5678 0.000012}}', { out: '  3.14|ab      |+5|ff|FF|10|101|A|1.234568e+03|1.2e-05' }],
  ['{{printf "%3d|%-3d|%s" 7 7 .Args}}', { out: '  7|7  |[-c echo hi]' }],
  ['{{range $i, $_ := .Args}}{{$i}}{{end}}', { out: '01' }],
  ['{{.Args | join ","}}', { err: 'template: :1:15: executing "" at <",">: can\'t handle "," for arg of type []string', out: '' }],
  ['{{split "a,b" "," | len}}', { out: '2' }],
  ['{{printf "%s" .Config.Labels.app}}', { out: 'shop' }],
  ['{{.Config.Labels.app}}', { out: 'shop' }],
  ['{{title .State.Status}}', { out: 'Running' }],
  ['{{truncate .Name 3}}', { out: '/we' }],
];

/**
 * Where docker differs from Go over raw JSON maps, because docker formats typed structs: fields keep
 * their declared order in json (only real maps sort their keys), Args is []string (so join works),
 * a nil *Health prints <nil>, a missing label of a map[string]string is "", and a string has no fields.
 */
const TYPED: Record<string, { out?: string; err?: string }> = {
  '{{join .Args ","}}': { out: '-c,echo hi' },
  '{{json .Config}}': { out: JSON.stringify({ ...DATA.Config, Labels: { app: 'shop', 'com.example.tier': 'web' } }) },
  '{{json .State}}': { out: JSON.stringify(DATA.State) },
  '{{json .Mounts}}': { out: JSON.stringify(DATA.Mounts) },
  '{{.State.Health}}': { out: '<nil>' },
  '{{index .Config.Labels "nope"}}': { out: '' },
  '{{.Name.Foo}}': { err: 'template: :1:7: executing "" at <.Name.Foo>: can\'t evaluate field Foo in type string' },
  '{{.Args | join ","}}': { err: 'template: :1:10: executing "" at <join ",">: error calling join: wrong type for value of join; expected []string; got string' },
};

describe('Go text/template (checked against Go 1.19)', () => {
  it.each(CASES)('%s', (source, want) => {
    const expected = TYPED[source] ?? want;
    let out: string | undefined;
    let err: string | undefined;
    try {
      out = compileTemplate(source).execute(structuredClone(DATA));
    } catch (e) {
      if (!(e instanceof TemplateError)) throw e;
      err = e.message;
    }
    if (expected.err !== undefined) expect(err).toBe(expected.err);
    else expect({ out, err }).toEqual({ out: expected.out, err: undefined });
  });
});

/** [input, what Go's tabwriter.NewWriter(w, 10, 1, 3, ' ', 0) wrote: docker's table settings] */
const TABWRITER: [string, string][] = [
  ['CONTAINER ID\tIMAGE\n4f3b2a1c0d9e\tbusybox\n', 'CONTAINER ID   IMAGE\n4f3b2a1c0d9e   busybox\n'],
  ['a\tb\tc\nlonger cell here\tx\ty\n', 'a                  b         c\nlonger cell here   x         y\n'],
  ['a\tb\nno tabs line\nccc\tdddddddddddddd\te\n', 'a         b\nno tabs line\nccc       dddddddddddddd   e\n'],
  ['NAME\tSTATUS\nx\t\ny\tUp 2 seconds\n', 'NAME      STATUS\nx         \ny         Up 2 seconds\n'],
  ['h1\th2\th3\n\t\t\nr1\tr2\n', 'h1        h2        h3\n                    \nr1        r2\n'],
  [
    'REPOSITORY\tTAG\tIMAGE ID\n<none>\t<none>\t0123456789ab\nbusybox\tlatest\tfedcba987654\n',
    'REPOSITORY   TAG       IMAGE ID\n<none>       <none>    0123456789ab\nbusybox      latest    fedcba987654\n',
  ],
  ['one\n', 'one\n'],
  ['\u00fcn\u00ef\tc\u00f6d\u00e9\nx\ty\n', '\u00fcn\u00ef       c\u00f6d\u00e9\nx         y\n'],
  ['a\tb\tc\n', 'a         b         c\n'],
];

describe('tabwriter (checked against Go 1.19 text/tabwriter)', () => {
  it.each(TABWRITER)('%j', (input, want) => expect(tabwrite(input)).toBe(want));
});

/** A formatter context like docker's: methods are fields, a missing field is an error. */
function containerRow(id: string, image: string, labels: Record<string, string>) {
  return {
    [STRUCT]: '*formatter.ContainerContext',
    ID: () => id,
    Image: () => image,
    Labels: () =>
      Object.entries(labels)
        .map(([k, v]) => `${k}=${v}`)
        .join(','),
    Label: (name: string) => labels[name] ?? '',
  };
}

describe('--format as docker applies it', () => {
  const headers = { ID: 'CONTAINER ID', Image: 'IMAGE', Labels: 'LABELS', Label: 'LABEL' };
  const rows = [containerRow('4f3b2a1c0d9e', 'busybox', { tier: 'web' }), containerRow('0a1b2c3d4e5f', 'registry.local:5000/app:1', {})];

  it('table: the header names docker prints, columns aligned as its tabwriter aligns them', () => {
    expect(new Format('table {{.ID}}\\t{{.Image}}').render(rows, headers)).toBe('CONTAINER ID   IMAGE\n4f3b2a1c0d9e   busybox\n0a1b2c3d4e5f   registry.local:5000/app:1\n');
  });

  it('table with no rows still prints the header', () => {
    expect(new Format('table {{.ID}}\t{{.Labels}}').render([], headers)).toBe('CONTAINER ID   LABELS\n');
  });

  it('a method with an argument: .Label "k"', () => {
    expect(new Format('{{.ID}} {{.Label "tier"}}|').render(rows, headers)).toBe('4f3b2a1c0d9e web|\n0a1b2c3d4e5f |\n');
  });

  it('header functions hand the header back: {{json .Labels}} and {{lower .Image}} head their columns', () => {
    expect(new Format('table {{json .Labels}}\t{{lower .Image}}').render([rows[1]], headers)).toBe('LABELS    IMAGE\n""        registry.local:5000/app:1\n');
  });

  it('json prints one object per line', () => {
    expect(new Format('json').render([{ a: 1 }, { a: 2 }])).toBe('{"a":1}\n{"a":2}\n');
  });

  it('a field the context does not have is an error naming it', () => {
    expect(() => new Format('{{.Nope}}').render(rows, headers)).toThrow('template: :1:2: executing "" at <.Nope>: can\'t evaluate field Nope in type *formatter.ContainerContext');
  });

  it('a template that does not parse is an error before anything runs', () => {
    expect(() => new Format('{{.ID')).toThrow(new TemplateError('template: :1: unclosed action'));
  });

  it('inspect -f renders each object on its own line', () => {
    expect(renderEach('{{.Name}}\\t{{.State.Status}}', [DATA, { ...DATA, Name: '/db' }])).toBe('/web\trunning\n/db\trunning\n');
  });
});
