/**
 * What `stats` and `system df` report (root): network counters of the container's interfaces,
 * volumes with their size and users, and images as `docker images` lists them (build steps'
 * parents left out, their layers still counted).
 */
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, startDaemon, type RunningDaemon } from '../helpers/daemon';
import { isRoot, rootReason } from '../helpers/env';
import { busyboxArchive, makeTempDir } from '../helpers/fixtures';

const hasCni = existsSync('/usr/lib/cni/bridge');

describe.skipIf(!isRoot || !hasCni)(`stats and system df (${!isRoot ? rootReason : hasCni ? 'root' : 'needs containernetworking-plugins'})`, () => {
  let work: string;
  let daemon: RunningDaemon;
  const img = 'usage/busybox:latest';

  beforeAll(async () => {
    work = await makeTempDir('berth-usage-');
    const archive = await busyboxArchive(work, img);
    daemon = await startDaemon();
    expectOk(await daemon.cli(['load', '-i', archive]));
  });

  afterAll(async () => {
    if (daemon) {
      await daemon.removeAllContainers();
      await daemon.stop();
    }
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  it('stats counts the bytes a container sent and received on its interfaces', async () => {
    expectOk(await daemon.cli(['run', '-d', '--name', 'talker', img, 'sleep', '3600']));
    const gateway = (await daemon.api('/containers/talker/json')).json.NetworkSettings.Gateway;
    await daemon.cli(['exec', 'talker', '/bin/busybox', 'ping', '-c', '3', '-W', '1', gateway]);
    const s = (await daemon.api('/containers/talker/stats?stream=0&one-shot=1')).json;
    expect(Object.keys(s.networks)).toEqual(['eth0']);
    expect(s.networks.eth0.tx_packets).toBeGreaterThanOrEqual(3);
    expect(s.networks.eth0.tx_bytes).toBeGreaterThan(0);
    const row = expectOk(await daemon.cli(['stats', '--no-stream', 'talker'])).stdout.split('\n')[1];
    const netIO = row.split(/\s{2,}/)[5];
    expect(netIO).toMatch(/^\d+(\.\d+)?k?B \/ \d+(\.\d+)?k?B$/);
    expect(netIO).not.toBe('0B / 0B');
    expectOk(await daemon.cli(['rm', '-f', 'talker']));
  });

  it('system df lists volumes with their size and users, and leaves build steps out of the images', async () => {
    expectOk(await daemon.cli(['volume', 'create', 'spare']));
    expectOk(await daemon.cli(['run', '-d', '--name', 'writer', '-v', 'filled:/data', img, 'sh', '-c', 'head -c 300000 /dev/zero > /data/blob; exec sleep 3600']));
    const ctx = path.join(work, 'ctx');
    await fs.mkdir(ctx, { recursive: true });
    await fs.writeFile(path.join(ctx, 'Dockerfile'), `FROM ${img}\nRUN echo one > /one\nRUN echo two > /two\n`);
    expectOk(await daemon.cli(['build', '-t', 'usage/built:1', ctx]));
    let df: any;
    for (let i = 0; i < 50; i++) {
      df = (await daemon.api('/system/df')).json;
      if (df.Volumes.find((v: { Name: string }) => v.Name === 'filled')?.UsageData.Size >= 300000) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const vols = Object.fromEntries(df.Volumes.map((v: { Name: string; UsageData: object }) => [v.Name, v.UsageData]));
    expect(vols.spare.RefCount).toBe(0);
    expect(vols.spare.Size).toBeLessThan(8192); // its empty folder
    expect(vols.filled.RefCount).toBe(1);
    expect(vols.filled.Size).toBeGreaterThanOrEqual(300000);
    const tags = df.Images.map((i: { RepoTags: string[] }) => i.RepoTags.join(',')).sort();
    expect(tags).toEqual(['usage/built:1', img].sort());
    const out = expectOk(await daemon.cli(['system', 'df'])).stdout;
    expect(out).toMatch(/Local Volumes\s+2\s+1\s/);
    expect(out).toMatch(/Images\s+2\s/);
    expectOk(await daemon.cli(['rm', '-f', 'writer']));
  });
});
