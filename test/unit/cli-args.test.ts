/**
 * The CLI's flag parsing (core/cli/args.ts): pflag's conventions and docker's words for its
 * errors, and the --help listing the same table drives.
 */
import { describe, expect, it } from 'vitest';
import { HelpRequested, checkArgCount, flagHelp, parse, parseFlags, parseTimestamp, type Flags } from '../../core/cli/args';
import { UsageError } from '../../core/cli/main';

const FLAGS: Flags = {
  all: { type: 'boolean', short: 'a', help: 'Show all' },
  quiet: { type: 'boolean', short: 'q', help: 'Only IDs' },
  name: { type: 'string', short: 'n', help: 'A name' },
  env: { type: 'string', short: 'e', multiple: true, help: 'Set environment variables' },
};

const error = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('no error');
};

describe('parseFlags', () => {
  it('long, long=value, short, joined shorts, short with its value attached, repeats', () => {
    const { values, positionals } = parseFlags(['--all', '--name=x', '-qe', 'A=1', '-eB=2', '-e=C=3', 'pos'], FLAGS, 'berth x [OPTIONS]');
    expect(values).toEqual({ all: true, name: 'x', quiet: true, env: ['A=1', 'B=2', 'C=3'] });
    expect(positionals).toEqual(['pos']);
  });

  it('booleans take =false, and other words are refused as pflag refuses them', () => {
    expect(parseFlags(['--all=false', '-q=true'], FLAGS, 'u').values).toEqual({ all: false, quiet: true });
    expect((error(() => parseFlags(['--all=maybe'], FLAGS, 'u')) as Error).message).toBe('invalid argument "maybe" for "-a, --all" flag: strconv.ParseBool: parsing "maybe": invalid syntax');
  });

  it('flags between operands, unless interspersed is off (run, exec)', () => {
    expect(parseFlags(['c1', '-a', 'c2'], FLAGS, 'u').positionals).toEqual(['c1', 'c2']);
    const run = parseFlags(['-a', 'img', 'sh', '-c', '--name'], FLAGS, 'u', { interspersed: false });
    expect(run.values).toEqual({ all: true });
    expect(run.positionals).toEqual(['img', 'sh', '-c', '--name']);
    expect(parseFlags(['--', '-a'], FLAGS, 'u').positionals).toEqual(['-a']);
    expect(parseFlags(['-'], FLAGS, 'u').positionals).toEqual(['-']);
  });

  it.each([
    [['--bogus'], 'unknown flag: --bogus'],
    [['--bogus=1'], 'unknown flag: --bogus'],
    [['-x'], "unknown shorthand flag: 'x' in -x"],
    [['-ax'], "unknown shorthand flag: 'x' in -ax"],
    [['--name'], 'flag needs an argument: --name'],
    [['-n'], "flag needs an argument: 'n' in -n"],
  ])('%j -> %s', (argv, message) => {
    const e = error(() => parseFlags(argv, FLAGS, 'berth x [OPTIONS]'));
    expect(e).toBeInstanceOf(UsageError);
    expect((e as UsageError).message).toBe(message);
    expect((e as UsageError).seeHelp).toBe(true);
  });

  it('--help and -h ask for help, unless -h is a flag of the command (run -h is --hostname)', () => {
    const help = error(() => parseFlags(['--help'], FLAGS, 'berth x [OPTIONS]')) as HelpRequested;
    expect(help).toBeInstanceOf(HelpRequested);
    expect(help.usage).toBe('berth x [OPTIONS]');
    expect(error(() => parseFlags(['-h'], FLAGS, 'u'))).toBeInstanceOf(HelpRequested);
    expect(parseFlags(['-h', 'box'], { hostname: { type: 'string', short: 'h' } }, 'u').values).toEqual({ hostname: 'box' });
  });
});

describe("operand counts, in docker's words", () => {
  it.each([
    [0, { min: 1 }, '"berth rm" requires at least 1 argument.'],
    [1, { min: 2, max: 2 }, '"berth rm" requires exactly 2 arguments.'],
    [1, { max: 0 }, '"berth rm" accepts no arguments.'],
    [3, { max: 2 }, '"berth rm" accepts at most 2 arguments.'],
  ])('%d with %j', (count, limits, first) => {
    const e = error(() => checkArgCount(count, 'berth rm [OPTIONS] CONTAINER [CONTAINER...]', limits)) as UsageError;
    expect(e.message).toBe(`${first}\nSee 'berth rm --help'.\n\nUsage:  berth rm [OPTIONS] CONTAINER [CONTAINER...]`);
    expect(e.seeHelp).toBe(false);
  });

  it('parse checks both', () => {
    expect(parse(['-a', 'x'], FLAGS, 'berth image ls [OPTIONS] [REPOSITORY[:TAG]]', { max: 1 }).positionals).toEqual(['x']);
    expect((error(() => parse(['x', 'y'], FLAGS, 'berth image ls [OPTIONS]', { max: 1 })) as Error).message).toMatch(/^"berth image ls" accepts at most 1 argument\./);
  });
});

describe('flagHelp', () => {
  it('lists every flag with its letter, a value name for string flags, sorted, help last', () => {
    expect(flagHelp(FLAGS)).toBe(
      ['  -a, --all           Show all', '  -e, --env list      Set environment variables', '      --help          Print usage', '  -n, --name string   A name', '  -q, --quiet         Only IDs'].join(
        '\n',
      ),
    );
    expect(flagHelp({ pull: { type: 'string', help: 'Pull image', default: '"missing"' } })).toContain('--pull string   Pull image (default "missing")');
  });
});

describe('parseTimestamp (docker GetTimestamp)', () => {
  it('Unix seconds, durations before now, dates', () => {
    expect(parseTimestamp('1700000000')).toBe(1700000000);
    expect(parseTimestamp('1700000000.5')).toBe(1700000000.5);
    const now = Date.now() / 1000;
    expect(Math.abs(parseTimestamp('10m')! - (now - 600))).toBeLessThan(2);
    expect(Math.abs(parseTimestamp('1h30m')! - (now - 5400))).toBeLessThan(2);
    expect(parseTimestamp('2026-01-02T03:04:05Z')).toBe(Date.parse('2026-01-02T03:04:05Z') / 1000);
    expect(parseTimestamp(undefined)).toBeUndefined();
    expect(() => parseTimestamp('yesterday')).toThrow(/invalid time "yesterday"/);
  });
});
