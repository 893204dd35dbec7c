/**
 * Hostile Dockerfiles against a real berthd (issue 12): one over 1 MiB and one of more than 4096
 * instructions are refused with an error naming the limit; a variable that doubles each line is
 * stopped at the 8 MiB config limit; and metadata steps make no image of their own, so 300 ENV
 * lines end in one image record and two blobs (config, manifest), and an unchanged rebuild
 * takes every step from the cache and ends in the same image.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type RunningDaemon } from '../helpers/daemon';
import { isRoot, rootReason } from '../helpers/env';
import { pushBusybox } from '../helpers/fixtures';
import { tarOf } from '../helpers/layer-fixtures';
import { startRegistry, type RunningRegistry } from '../helpers/registry';

describe.skipIf(!isRoot)(`build bounds (${rootReason})`, () => {
  let registry: RunningRegistry;
  let daemon: RunningDaemon;
  let base: string;

  beforeAll(async () => {
    registry = await startRegistry();
    base = `${registry.host}/bounds/busybox:latest`;
    await pushBusybox(registry.host, 'bounds/busybox:latest');
    daemon = await startDaemon();
    const pulled = await daemon.api(`/images/create?fromImage=${encodeURIComponent(base)}`, { method: 'POST' });
    expect(pulled.body).not.toMatch(/errorDetail/);
  }, 120_000);

  afterAll(async () => {
    await daemon?.removeAllContainers();
    await daemon?.stop();
    await registry?.stop();
  });

  /** POST /build of a context holding `dockerfile`; the streamed messages, parsed. */
  const build = async (dockerfile: string, query = '') => {
    const context = await tarOf([{ name: 'Dockerfile', content: dockerfile }]);
    const res = await daemon.api(`/build?rm=1${query}`, { method: 'POST', body: context, headers: { 'Content-Type': 'application/x-tar' } });
    const msgs: { stream?: string; error?: string; aux?: { ID: string } }[] = res.body
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l));
    return { status: res.status, msgs, error: msgs.find((m) => m.error)?.error ?? (res.status >= 400 ? res.json?.message : undefined), id: msgs.find((m) => m.aux)?.aux?.ID };
  };
  const imageCount = async () => (await daemon.api('/images/json?all=1')).json.length;
  const blobCount = () => readdirSync(path.join(daemon.root, 'content', 'blobs', 'sha256')).length;

  it('a Dockerfile over 1 MiB is refused, naming the file and the limit', async () => {
    const padded = `FROM ${base}\n` + '# padding\n'.repeat(110_000) + 'ENV DONE=1\n';
    const viaContext = await build(padded);
    expect(viaContext.error).toMatch(/Dockerfile is \d+ bytes, larger than the 1 MiB limit for a Dockerfile/);
    // `docker build - < Dockerfile`: the body is the Dockerfile itself.
    const res = await daemon.api('/build?rm=1', { method: 'POST', body: padded });
    expect(res.body).toMatch(/larger than the 1 MiB limit for a Dockerfile/);
  });

  it('more than 4096 instructions are refused, naming the line and the limit', async () => {
    const lines = Array.from({ length: 4100 }, (_, i) => `LABEL n${i}=${i}`);
    const images = await imageCount();
    const res = await build(`FROM ${base}\n${lines.join('\n')}\n`);
    expect(res.error).toMatch(/^Dockerfile:4097: more than 4096 instructions: the limit for a Dockerfile/);
    expect(await imageCount()).toBe(images);
  });

  it('a variable doubled on every line is stopped at the 8 MiB config limit', async () => {
    const doubling = Array.from({ length: 16 }, () => 'ENV A=$A$A').join('\n');
    const images = await imageCount();
    const res = await build(`FROM ${base}\nENV A=${'x'.repeat(1024)}\n${doubling}\nCMD ["true"]\n`);
    expect(res.error).toMatch(/8 MiB limit/);
    expect(await imageCount()).toBe(images);
    expect((await daemon.api('/_ping')).body).toBe('OK');
  });

  it('300 ENV lines make one image record and two blobs; a rebuild is all cache hits and the same image', async () => {
    const dockerfile = `FROM ${base}\n${Array.from({ length: 300 }, (_, i) => `ENV VAR_${i}=value-${i}`).join('\n')}\nCMD ["sh"]\n`;
    const images = await imageCount();
    const blobs = blobCount();
    const first = await build(dockerfile, '&t=bounds/env300:v1');
    expect(first.error).toBeUndefined();
    expect(await imageCount()).toBe(images + 1);
    expect(blobCount()).toBe(blobs + 2);
    const inspect = (await daemon.api('/images/bounds/env300:v1/json')).json;
    expect(inspect.Config.Env).toContain('VAR_0=value-0');
    expect(inspect.Config.Env).toContain('VAR_299=value-299');
    expect(inspect.Config.Cmd).toEqual(['sh']);
    const history = (await daemon.api('/images/bounds/env300:v1/history')).json;
    expect(history.filter((h: { CreatedBy: string }) => h.CreatedBy.includes('ENV VAR_'))).toHaveLength(300);

    const again = await build(dockerfile, '&t=bounds/env300:v2');
    expect(again.error).toBeUndefined();
    expect(again.msgs.filter((m) => m.stream === ' ---> Using cache\n')).toHaveLength(301);
    expect(again.id).toBe(first.id);
    expect(await imageCount()).toBe(images + 1);
  });

  it('the cache never hands a metadata step an image that holds later steps', async () => {
    const both = await build(`FROM ${base}\nENV FIRST=1\nENV SECOND=2\n`, '&t=bounds/meta:both');
    expect(both.error).toBeUndefined();
    const one = await build(`FROM ${base}\nENV FIRST=1\n`, '&t=bounds/meta:one');
    expect(one.error).toBeUndefined();
    expect(one.msgs.filter((m) => m.stream === ' ---> Using cache\n')).toHaveLength(1);
    const env = (await daemon.api('/images/bounds/meta:one/json')).json.Config.Env;
    expect(env).toContain('FIRST=1');
    expect(env).not.toContain('SECOND=2');
  });
});
