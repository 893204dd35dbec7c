import type { CommandContext } from '../main';
import { parse } from '../args';
import { table } from '../render';
import { humanSize } from '../../util/format';

export async function plugins({ client, argv, out }: CommandContext): Promise<void> {
  parse(argv, {}, 'berth plugins', { max: 0 });
  const infos = await client.json<any[]>('/berth/plugins');
  out.write(table(['URI', 'STATUS', 'SOURCE', 'REASON'], infos.map((p) => [p.uri, p.status, p.source, p.reason ?? ''])));
}

export async function version({ client, out }: CommandContext): Promise<void> {
  out.write(`Client:\n Version:     0.1.0\n API version: 1.43\n Node:        ${process.version}\n\n`);
  const v = await client.json('/version');
  out.write(`Server: berthd\n Version:     ${v.Version}\n API version: ${v.ApiVersion} (minimum version ${v.MinAPIVersion})\n Runtime:     ${v.GoVersion}\n OS/Arch:     ${v.Os}/${v.Arch}\n Kernel:      ${v.KernelVersion}\n`);
}

export async function info({ client, out }: CommandContext): Promise<void> {
  const i = await client.json('/info');
  const lines = [
    `Server Version: ${i.ServerVersion}`,
    `Storage Driver: ${i.Driver}`,
    ...(i.DriverStatus ?? []).map((s: string[]) => ` ${s[0]}: ${s[1]}`),
    `Containers: ${i.Containers}`,
    ` Running: ${i.ContainersRunning}`,
    ` Paused: ${i.ContainersPaused}`,
    ` Stopped: ${i.ContainersStopped}`,
    `Images: ${i.Images}`,
    ...(i.CgroupVersion ? [`Cgroup Version: ${i.CgroupVersion}`, `Cgroup Driver: ${i.CgroupDriver ?? 'cgroupfs'}`] : []),
    `Default Runtime: ${i.DefaultRuntime}`,
    `Plugins:`,
    ...(i.BerthPlugins ?? []).map((p: any) => ` ${p.uri}: ${p.status}${p.reason ? ` (${p.reason})` : ''}`),
    `Kernel Version: ${i.KernelVersion}`,
    `Operating System: ${i.OperatingSystem}`,
    `Architecture: ${i.Architecture}`,
    `CPUs: ${i.NCPU}`,
    `Total Memory: ${humanSize(i.MemTotal)}`,
    `Berth Root Dir: ${i.DockerRootDir}`,
  ];
  out.write(lines.join('\n') + '\n');
}

export async function check({ client, out }: CommandContext): Promise<number> {
  const r = await client.json('/berth/system/check', { method: 'POST' });
  out.write(`checked ${r.blobs} blobs\n`);
  for (const d of r.corrupt) out.write(`corrupt: ${d}\n`);
  for (const d of r.missing) out.write(`missing: ${d}\n`);
  for (const d of r.orphaned) out.write(`orphaned: ${d}\n`);
  const clean = !r.corrupt.length && !r.missing.length && !r.orphaned.length;
  out.write(clean ? 'store is clean\n' : `${r.corrupt.length} corrupt, ${r.missing.length} missing, ${r.orphaned.length} orphaned\n`);
  return r.corrupt.length || r.missing.length ? 1 : 0;
}

/** `berth inspect NAME`: a container when one has that name or id, else an image (docker's order). */
export async function inspect({ client, argv, out }: CommandContext): Promise<number> {
  const { positionals } = parse(argv, { type: { type: 'string' }, format: { type: 'string', short: 'f' } }, 'berth inspect NAME|ID [NAME|ID...]', { min: 1 });
  const found = [];
  let code = 0;
  for (const name of positionals) {
    const paths = [`/containers/${encodeURIComponent(name)}/json`, `/images/${encodeURIComponent(name)}/json`];
    let obj;
    for (const p of paths) {
      obj = await client.json(p).catch((e) => (e.status === 404 ? undefined : Promise.reject(e)));
      if (obj) break;
    }
    if (obj) found.push(obj);
    else {
      process.stderr.write(`Error: No such object: ${name}\n`);
      code = 1;
    }
  }
  out.write(JSON.stringify(found, null, 4) + '\n');
  return code;
}
