import { describe, expect, it } from 'vitest';
import { parseWwwAuthenticate } from '../../plugins/registry-distribution/www-authenticate';

describe('parseWwwAuthenticate', () => {
  it('reads a Docker Hub style Bearer challenge', () => {
    expect(parseWwwAuthenticate('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"')).toEqual([
      {
        scheme: 'bearer',
        params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/busybox:pull' },
      },
    ]);
  });

  it('reads Basic with a realm containing spaces', () => {
    expect(parseWwwAuthenticate('Basic realm="Registry Realm"')).toEqual([{ scheme: 'basic', params: { realm: 'Registry Realm' } }]);
  });

  it('keeps commas inside quoted values', () => {
    const [c] = parseWwwAuthenticate('Bearer realm="https://a.example/token",scope="repository:a/b:pull,push",error="insufficient_scope"');
    expect(c.params.scope).toBe('repository:a/b:pull,push');
    expect(c.params.error).toBe('insufficient_scope');
  });

  it('splits several challenges in one header', () => {
    const cs = parseWwwAuthenticate('Basic realm="basic realm", Bearer realm="https://t.example/token", service="reg"');
    expect(cs.map((c) => c.scheme)).toEqual(['basic', 'bearer']);
    expect(cs[1].params).toEqual({ realm: 'https://t.example/token', service: 'reg' });
  });

  it('accepts an array of header values (repeated headers)', () => {
    const cs = parseWwwAuthenticate(['Basic realm="x"', 'Bearer realm="y"']);
    expect(cs).toEqual([
      { scheme: 'basic', params: { realm: 'x' } },
      { scheme: 'bearer', params: { realm: 'y' } },
    ]);
  });

  it('unescapes backslashes in quoted strings', () => {
    const [c] = parseWwwAuthenticate('Basic realm="a \\"quoted\\" \\\\ realm"');
    expect(c.params.realm).toBe('a "quoted" \\ realm');
  });

  it('is case-insensitive for schemes and parameter names, not values', () => {
    const [c] = parseWwwAuthenticate('BEARER Realm="https://X/Token", SERVICE=Reg');
    expect(c).toEqual({ scheme: 'bearer', params: { realm: 'https://X/Token', service: 'Reg' } });
  });

  it('reads unquoted token values and tolerates spaces around "="', () => {
    const [c] = parseWwwAuthenticate('Bearer realm = https://x/token , service=reg');
    expect(c.params).toEqual({ realm: 'https://x/token', service: 'reg' });
  });

  it('reads token68 challenges next to parameter ones', () => {
    const cs = parseWwwAuthenticate('Negotiate YII=, Basic realm="r"');
    expect(cs).toEqual([
      { scheme: 'negotiate', params: {}, token68: 'YII=' },
      { scheme: 'basic', params: { realm: 'r' } },
    ]);
  });

  it('reads a bare scheme followed by another challenge', () => {
    expect(parseWwwAuthenticate('Basic, Bearer realm="r"').map((c) => c.scheme)).toEqual(['basic', 'bearer']);
  });

  it('survives an unterminated quoted string', () => {
    const [c] = parseWwwAuthenticate('Bearer realm="https://x/token, service="reg');
    expect(c.scheme).toBe('bearer');
    expect(c.params.realm).toContain('https://x/token');
  });

  it('returns nothing for empty or missing headers', () => {
    expect(parseWwwAuthenticate(undefined)).toEqual([]);
    expect(parseWwwAuthenticate('')).toEqual([]);
    expect(parseWwwAuthenticate('  ,  ,')).toEqual([]);
  });

  it('skips garbage without losing the challenges after it', () => {
    const cs = parseWwwAuthenticate('@@@, Bearer realm="r"');
    expect(cs).toEqual([{ scheme: 'bearer', params: { realm: 'r' } }]);
  });
});
