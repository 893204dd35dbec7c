/**
 * Dockerfile variable substitution and word handling (core/build/words.ts) and .dockerignore
 * matching (core/build/ignore.ts).
 */
import { describe, expect, it } from 'vitest';
import { keyValuePairs, processWord, processWords, rawWords } from '../../core/build/words';
import { IgnoreMatcher } from '../../core/build/ignore';

const vars: Record<string, string> = { NAME: 'berth', EMPTY: '', SPACED: 'a b', DIR: '/opt/app' };
const lookup = (n: string) => vars[n];

describe('substitution', () => {
  it('expands $VAR and ${VAR}; unset is empty', () => {
    expect(processWord('$NAME-${NAME}_x', lookup)).toBe('berth-berth_x');
    expect(processWord('$UNSET/x', lookup)).toBe('/x');
    expect(processWord('${DIR}/bin', lookup)).toBe('/opt/app/bin');
  });

  it('handles :- and :+ (empty counts as unset) and - and + (only unset counts)', () => {
    expect(processWord('${UNSET:-fallback}', lookup)).toBe('fallback');
    expect(processWord('${EMPTY:-fallback}', lookup)).toBe('fallback');
    expect(processWord('${EMPTY-fallback}', lookup)).toBe('');
    expect(processWord('${NAME:-fallback}', lookup)).toBe('berth');
    expect(processWord('${NAME:+alt}', lookup)).toBe('alt');
    expect(processWord('${EMPTY:+alt}', lookup)).toBe('');
    expect(processWord('${EMPTY+alt}', lookup)).toBe('alt');
    expect(processWord('${UNSET:+alt}', lookup)).toBe('');
    // Nested: the default may hold variables itself.
    expect(processWord('${UNSET:-$DIR/${NAME}}', lookup)).toBe('/opt/app/berth');
    expect(() => processWord('${UNSET:?must be set}', lookup, '\\', 'ENV')).toThrow('ENV: UNSET: must be set');
    expect(() => processWord('${NAME', lookup, '\\', 'ENV')).toThrow("missing '}'");
  });

  it('single quotes stop substitution, the escape makes $ literal, double quotes group', () => {
    expect(processWord("'$NAME'", lookup)).toBe('$NAME');
    expect(processWord('"$NAME x"', lookup)).toBe('berth x');
    expect(processWord('\\$NAME', lookup)).toBe('$NAME');
    expect(processWord('`$NAME', lookup, '`')).toBe('$NAME');
    // A lone $ stays.
    expect(processWord('cost: $', lookup)).toBe('cost: $');
  });

  it('never splits a substituted value again', () => {
    expect(processWords('$SPACED "two words" three', lookup)).toEqual(['a b', 'two words', 'three']);
    expect(rawWords('a="b c" d')).toEqual(['a="b c"', 'd']);
  });

  it('reads ENV/LABEL pairs in both forms', () => {
    expect(keyValuePairs('A=1 B="two words" C=$NAME', lookup, '\\', 'ENV')).toEqual([
      ['A', '1'],
      ['B', 'two words'],
      ['C', 'berth'],
    ]);
    expect(keyValuePairs('LEGACY value with spaces', lookup, '\\', 'ENV')).toEqual([['LEGACY', 'value with spaces']]);
    expect(keyValuePairs('"com.example.label"="x y"', null, '\\', 'LABEL')).toEqual([['com.example.label', 'x y']]);
    expect(() => keyValuePairs('A=1 B', lookup, '\\', 'ENV')).toThrow('ENV: "B" is not KEY=VALUE');
  });
});

describe('.dockerignore', () => {
  const m = IgnoreMatcher.parse(`# comment
*.log
/secret
build/
**/node_modules
!keep.log
docs/**/*.tmp
`);

  it('matches globs, directories and everything below them', () => {
    expect(m.ignores('app.log')).toBe(true);
    expect(m.ignores('sub/app.log')).toBe(false); // `*` stays within one component
    expect(m.ignores('secret')).toBe(true);
    expect(m.ignores('secret/inner/file')).toBe(true);
    expect(m.ignores('build/out.js')).toBe(true);
    expect(m.ignores('a/b/node_modules/x/index.js')).toBe(true);
    expect(m.ignores('node_modules')).toBe(true);
    expect(m.ignores('docs/a/b/c.tmp')).toBe(true);
    expect(m.ignores('docs/c.tmp')).toBe(true);
    expect(m.ignores('src/main.ts')).toBe(false);
  });

  it('re-includes with !, the last matching pattern winning', () => {
    expect(m.ignores('keep.log')).toBe(false);
    const again = IgnoreMatcher.parse('!keep.log\n*.log\n');
    expect(again.ignores('keep.log')).toBe(true);
    const dir = IgnoreMatcher.parse('logs\n!logs/keep.txt\n');
    expect(dir.ignores('logs/other.txt')).toBe(true);
    expect(dir.ignores('logs/keep.txt')).toBe(false);
    expect(dir.mayReincludeBelow('logs')).toBe(true);
  });
});
