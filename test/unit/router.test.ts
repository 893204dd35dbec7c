import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { BerthError, InvalidArgumentError } from '../../core/contracts/errors';
import { MAX_JSON_BODY, Router, boolParam, filtersParam, readJsonBody, type ApiRequest } from '../../core/api/router';

const noop = () => undefined;

function router(): Router {
  return new Router()
    .add('GET', '/images/json', noop)
    .add('GET', '/images/{name*}/json', noop)
    .add('DELETE', '/images/{name*}', noop)
    .add('POST', '/images/{name*}/tag', noop)
    .add('GET', '/containers/{id}/json', noop)
    .add('POST', '/containers/{id}/start', noop);
}

function params(r: Router, method: string, path: string): Record<string, string> {
  const m = r.match(method, path);
  if (!m || m === 'method') throw new Error(`no route for ${method} ${path}: ${m}`);
  return m.params;
}

describe('Router', () => {
  it('{name*} matches image names with slashes, ports, tags and digests', () => {
    const r = router();
    expect(params(r, 'GET', '/images/busybox/json')).toEqual({ name: 'busybox' });
    expect(params(r, 'GET', '/images/127.0.0.1:5000/app/web:1.0/json')).toEqual({ name: '127.0.0.1:5000/app/web:1.0' });
    const digest = `sha256:${'a'.repeat(64)}`;
    expect(params(r, 'DELETE', `/images/library/busybox@${digest}`)).toEqual({ name: `library/busybox@${digest}` });
    expect(params(r, 'POST', '/images/localhost:5000/a/b:tag/tag')).toEqual({ name: 'localhost:5000/a/b:tag' });
    // %-escapes in the path are decoded.
    expect(params(r, 'GET', '/images/127.0.0.1%3A5000%2Fapp%3A1/json')).toEqual({ name: '127.0.0.1:5000/app:1' });
  });

  it('{id} matches one segment only', () => {
    const r = router();
    expect(params(r, 'GET', '/containers/abc123/json')).toEqual({ id: 'abc123' });
    expect(r.match('GET', '/containers/a/b/json')).toBeUndefined();
  });

  it('a fixed route is preferred in registration order over a wildcard', () => {
    const r = router();
    const m = r.match('GET', '/images/json');
    expect(m && m !== 'method' ? m.params : undefined).toEqual({});
  });

  it('distinguishes an unknown path (404) from a known path with the wrong method (405)', () => {
    const r = router();
    expect(r.match('GET', '/nope')).toBeUndefined();
    expect(r.match('GET', '/containers/abc')).toBeUndefined();
    expect(r.match('PUT', '/containers/abc/start')).toBe('method');
    expect(r.match('DELETE', '/images/json')).not.toBe('method'); // DELETE /images/{name*} with name "json"
    expect(r.match('PATCH', '/images/json')).toBe('method');
  });

  it('HEAD is served by the GET handler', () => {
    const r = router();
    expect(params(r, 'HEAD', '/containers/abc/json')).toEqual({ id: 'abc' });
    expect(r.match('HEAD', '/containers/abc/start')).toBe('method');
  });

  it('a malformed %-escape is a 400 naming the parameter, not a crash', () => {
    const r = router();
    let err: unknown;
    try {
      r.match('GET', '/images/bad%E0%A4%A/json');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as Error).message).toContain('name');
  });
});

describe('query parameters', () => {
  const q = (s: string) => new URLSearchParams(s);

  it('filtersParam reads both shapes Docker clients send', () => {
    expect(filtersParam(q(''))).toEqual({});
    expect(filtersParam(q(`filters=${encodeURIComponent('{"reference":["busybox","alpine:3"],"dangling":["true"]}')}`))).toEqual({
      reference: ['busybox', 'alpine:3'],
      dangling: ['true'],
    });
    // The older map-of-bools shape: {"dangling": {"true": true}}.
    expect(filtersParam(q(`filters=${encodeURIComponent('{"dangling":{"true":true},"label":{"a=b":true,"c":true}}')}`))).toEqual({
      dangling: ['true'],
      label: ['a=b', 'c'],
    });
  });

  it('filtersParam refuses what is not a JSON object with a 400', () => {
    for (const raw of ['{nope', 'null', '[1,2]', '"x"', '7']) {
      expect(() => filtersParam(q(`filters=${encodeURIComponent(raw)}`))).toThrow(InvalidArgumentError);
    }
  });

  it('boolParam follows Docker: "", 0, no, false and none are false', () => {
    for (const v of ['1', 'true', 'True', 'yes', 'on']) expect(boolParam(q(`force=${v}`), 'force')).toBe(true);
    for (const v of ['', '0', 'false', 'FALSE', 'no', 'none', ' 0 ']) expect(boolParam(q(`force=${encodeURIComponent(v)}`), 'force')).toBe(false);
    expect(boolParam(q(''), 'force')).toBe(false);
  });
});

describe('readJsonBody', () => {
  function request(chunks: Array<string | Buffer>): ApiRequest {
    const raw = Object.assign(Readable.from(chunks.map((c) => (typeof c === 'string' ? Buffer.from(c) : c))), { headers: {} }) as unknown as IncomingMessage;
    return { raw, method: 'POST', path: '/x', params: {}, query: new URLSearchParams(), version: '1.43', signal: new AbortController().signal };
  }

  it('parses JSON sent in pieces; an empty body is undefined', async () => {
    expect(await readJsonBody(request(['{"Image":', '"busybox","Cmd":["sh"]}']))).toEqual({ Image: 'busybox', Cmd: ['sh'] });
    expect(await readJsonBody(request([]))).toBeUndefined();
  });

  it('bad JSON is a 400', async () => {
    const err = await readJsonBody(request(['{"Image": '])).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as BerthError).status).toBe(400);
    expect((err as Error).message).toMatch(/invalid JSON body/);
  });

  it('a body over the limit is a 413, and exactly the limit is read', async () => {
    const chunk = Buffer.alloc(1024 * 1024, 0x20);
    const over = await readJsonBody(request([...Array(2).fill(chunk), Buffer.from('1')])).catch((e: unknown) => e);
    expect(over).toBeInstanceOf(BerthError);
    expect((over as BerthError).status).toBe(413);
    expect(MAX_JSON_BODY).toBe(2 * 1024 * 1024);
    const exact = Buffer.alloc(MAX_JSON_BODY, 0x20);
    exact.write('1', MAX_JSON_BODY - 1);
    expect(await readJsonBody(request([exact]))).toBe(1);
  });
});
