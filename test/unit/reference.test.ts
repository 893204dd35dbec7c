import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../core/contracts/errors';
import { familiarName, familiarReference, formatReference, isDigest, parseReference, repositoryName } from '../../core/images/reference';

const HEX = 'dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c';
const DIGEST = `sha256:${HEX}`;

// Vectors follow distribution/reference (normalize_test.go, reference_test.go): input -> fully qualified.
const NORMALISED: Array<[string, string]> = [
  ['busybox', 'docker.io/library/busybox:latest'],
  ['busybox:1.36', 'docker.io/library/busybox:1.36'],
  ['library/busybox', 'docker.io/library/busybox:latest'],
  ['docker.io/busybox', 'docker.io/library/busybox:latest'],
  ['docker.io/library/busybox', 'docker.io/library/busybox:latest'],
  ['index.docker.io/busybox', 'docker.io/library/busybox:latest'],
  ['index.docker.io/user/app:v2', 'docker.io/user/app:v2'],
  ['user/app', 'docker.io/user/app:latest'],
  ['docker.io/library/foo/bar', 'docker.io/library/foo/bar:latest'],
  ['test_com/foo', 'docker.io/test_com/foo:latest'],
  ['localhost/app', 'localhost/app:latest'],
  ['localhost:5000/a/b:tag', 'localhost:5000/a/b:tag'],
  ['127.0.0.1:5000/busybox', '127.0.0.1:5000/busybox:latest'],
  ['test-com:8080/foo', 'test-com:8080/foo:latest'],
  ['xn--n3h.com:18080/foo', 'xn--n3h.com:18080/foo:latest'],
  ['[::1]:5000/x', '[::1]:5000/x:latest'],
  ['[fc00:1:2:3:4:5:6:7]:5000/library/debian', '[fc00:1:2:3:4:5:6:7]:5000/library/debian:latest'],
  ['Foo/bar', 'Foo/bar:latest'],
  ['docker---rules/docker', 'docker.io/docker---rules/docker:latest'],
  ['dock__er/docker', 'docker.io/dock__er/docker:latest'],
  ['test.com:5000', 'docker.io/library/test.com:5000'],
  [`redis@${DIGEST}`, `docker.io/library/redis@${DIGEST}`],
  [`busybox:latest@${DIGEST}`, `docker.io/library/busybox:latest@${DIGEST}`],
  [`127.0.0.1:5000/app:1@${DIGEST}`, `127.0.0.1:5000/app:1@${DIGEST}`],
  [`docker.io/${HEX}`, `docker.io/library/${HEX}:latest`],
  ['thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev', 'docker.io/library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev:latest'],
  ['app:UPPER_case.tag-1', 'docker.io/library/app:UPPER_case.tag-1'],
];

const INVALID: Array<[string, RegExp]> = [
  ['', /empty/],
  [':tag', /repository name is empty/],
  ['Uppercase:tag', /must be lowercase/],
  ['docker/Docker', /must be lowercase/],
  ['example.com/Foo', /must be lowercase/],
  ['busybox:-bad', /tag "-bad"/],
  ['busybox:.bad', /tag ".bad"/],
  [`busybox:${'a'.repeat(129)}`, /tag/],
  ['busybox@sha256:abc', /digest/],
  [`busybox@sha256:${HEX.toUpperCase()}`, /digest/],
  [`busybox@md5:${HEX}`, /digest/],
  [HEX, /64-byte hexadecimal/],
  ['-docker', /component "-docker"/],
  ['-docker.io/docker/docker', /registry host "-docker.io"/],
  ['docker-/docker', /component/],
  ['docker///docker', /component ""/],
  ['docker/', /component ""/],
  ['____/____', /component/],
  ['dock..er/docker', /registry host "dock..er"/],
  ['user/dock_.er', /component "dock_.er"/],
  ['https://github.com/docker/docker', /registry host "https:"/],
  ['fc00::1:5000/debian', /registry host/],
  ['[fc00::1]', /tag/],
  ['[fc00::1]:5000', /not valid/],
  ['[fe80::1%eth0]:5000/debian', /registry host/],
  ['[2001:db8:3:4::192.0.2.33]:5000/debian', /registry host/],
  ['host:port/x', /registry host "host:port"/],
  ['a b', /not valid/],
  [`${'a'.repeat(240)}/${'b'.repeat(20)}`, /longer than 255/],
];

describe('parseReference normalises like distribution/reference', () => {
  it.each(NORMALISED)('%s -> %s', (input, expected) => {
    expect(formatReference(parseReference(input))).toBe(expected);
  });

  it('splits domain, path, tag and digest', () => {
    expect(parseReference('busybox')).toEqual({ domain: 'docker.io', path: 'library/busybox', tag: 'latest', digest: undefined });
    expect(parseReference('localhost:5000/a/b:tag')).toEqual({ domain: 'localhost:5000', path: 'a/b', tag: 'tag', digest: undefined });
    expect(parseReference('[::1]:5000/x')).toMatchObject({ domain: '[::1]:5000', path: 'x' });
    expect(parseReference(`repo@${DIGEST}`)).toEqual({ domain: 'docker.io', path: 'library/repo', tag: undefined, digest: DIGEST });
    expect(parseReference(`repo:v1@${DIGEST}`)).toEqual({ domain: 'docker.io', path: 'library/repo', tag: 'v1', digest: DIGEST });
  });

  it('accepts sha512 digests and rejects a sha512 of the wrong length', () => {
    expect(parseReference(`repo@sha512:${'a'.repeat(128)}`).digest).toBe(`sha512:${'a'.repeat(128)}`);
    expect(() => parseReference(`repo@sha512:${'a'.repeat(64)}`)).toThrow(/digest/);
  });

  it('leaves the tag off when defaultTag is false', () => {
    expect(parseReference('busybox', { defaultTag: false }).tag).toBeUndefined();
    expect(formatReference(parseReference('busybox', { defaultTag: false }))).toBe('docker.io/library/busybox');
  });

  it('uses a configured default domain without the library/ prefix', () => {
    const ref = parseReference('busybox', { defaultDomain: '127.0.0.1:5000' });
    expect(formatReference(ref)).toBe('127.0.0.1:5000/busybox:latest');
    expect(formatReference(parseReference('quay.io/x/y', { defaultDomain: '127.0.0.1:5000' }))).toBe('quay.io/x/y:latest');
  });

  it('accepts a name of exactly 255 characters and rejects 256', () => {
    const path255 = 'a'.repeat(255 - 'docker.io/'.length - 'x/'.length);
    expect(repositoryName(parseReference(`x/${path255}`))).toHaveLength(255);
    expect(() => parseReference(`x/${path255}a`)).toThrow(/longer than 255/);
  });

  it.each(INVALID)('rejects %j', (input, why) => {
    let caught: unknown;
    try {
      parseReference(input);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(InvalidArgumentError);
    const message = (caught as Error).message;
    expect(message).toMatch(why);
    // The error names what the user typed.
    expect(message).toContain(`"${input}"`);
    expect((caught as InvalidArgumentError).status).toBe(400);
  });
});

describe('familiar names', () => {
  // From distribution/reference TestParseRepositoryInfo: familiar <-> full.
  const FAMILIAR: Array<[string, string]> = [
    ['docker.io/library/ubuntu', 'ubuntu'],
    ['docker.io/fooo/bar', 'fooo/bar'],
    ['docker.io/other/library', 'other/library'],
    ['docker.io/library/foo/bar', 'library/foo/bar'],
    ['docker.io/store/foo/bar', 'store/foo/bar'],
    ['127.0.0.1:8000/private/moonbase', '127.0.0.1:8000/private/moonbase'],
    ['example.com:8000/privatebasee', 'example.com:8000/privatebasee'],
    ['Foo/bar', 'Foo/bar'],
  ];

  it.each(FAMILIAR)('%s is shown as %s and parses back', (full, familiar) => {
    const ref = parseReference(full, { defaultTag: false });
    expect(familiarName(ref)).toBe(familiar);
    expect(repositoryName(parseReference(familiar))).toBe(full);
  });

  it('familiarReference keeps tag and digest and round-trips', () => {
    for (const input of ['busybox:latest', 'user/app:1', '127.0.0.1:5000/app:1', `busybox:latest@${DIGEST}`, `library/foo/bar@${DIGEST}`]) {
      const ref = parseReference(input);
      const shown = familiarReference(ref);
      expect(parseReference(shown)).toEqual(ref);
    }
    expect(familiarReference(parseReference('index.docker.io/library/busybox'))).toBe('busybox:latest');
    expect(familiarReference(parseReference(`busybox@${DIGEST}`))).toBe(`busybox@${DIGEST}`);
  });

  it('isDigest accepts only well-formed digests', () => {
    expect(isDigest(DIGEST)).toBe(true);
    expect(isDigest(`sha256:${HEX.slice(1)}`)).toBe(false);
    expect(isDigest(HEX)).toBe(false);
    expect(isDigest(`sha256:../../${HEX.slice(6)}`)).toBe(false);
  });
});
