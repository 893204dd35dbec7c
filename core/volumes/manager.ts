/**
 * Volumes: records (`<root>/volumes/.records/<name>.json`), which containers use which volume
 * (`<root>/volumes/.containers/<id>.json`: the container's volume, bind and tmpfs mounts,
 * resolved at create), seeding a new volume from the image, and the mounts a starting container
 * gets. Where the data lives is the volume driver's business (core/contracts/volume.ts;
 * `volume.local` keeps it in `<root>/volumes/<name>/_data`).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { ConflictError, InvalidArgumentError, NotFoundError } from '../contracts/errors';
import type { MountSpec } from '../contracts/launch';
import type { Logger } from '../contracts/types';
import type { VolumeDriver } from '../contracts/volume';
import { ensureDir, readJson, writeJsonAtomic } from '../util/fs';
import { type ContainerMount, VOLUME_NAME } from './mounts';

const run = promisify(execFile);

export interface VolumeRecord {
  Name: string;
  Driver: string;
  Mountpoint: string;
  CreatedAt: string;
  Labels: Record<string, string>;
  Options: Record<string, string>;
  Scope: 'local';
  /** Made for a container (image VOLUME, `-v /path`): `rm -v` of that container removes it. */
  Anonymous: boolean;
  /** Filled from the image the first time a container mounted it. */
  Seeded: boolean;
}

export interface VolumeManagerDeps {
  root: string;
  log: Logger;
  driver: (name: string) => VolumeDriver | undefined;
  nameOf: (containerId: string) => string | undefined;
}

export class VolumeManager {
  private readonly recordsDir: string;
  private readonly usesDir: string;
  private readonly records = new Map<string, VolumeRecord>();
  private readonly uses = new Map<string, ContainerMount[]>();

  constructor(private readonly deps: VolumeManagerDeps) {
    this.recordsDir = path.join(deps.root, 'volumes', '.records');
    this.usesDir = path.join(deps.root, 'volumes', '.containers');
  }

  async open(): Promise<void> {
    await ensureDir(this.recordsDir);
    await ensureDir(this.usesDir);
    for (const f of await fs.promises.readdir(this.recordsDir)) {
      const r = f.endsWith('.json') ? await readJson<VolumeRecord>(path.join(this.recordsDir, f)) : undefined;
      if (r) this.records.set(r.Name, r);
    }
    for (const f of await fs.promises.readdir(this.usesDir)) {
      const u = f.endsWith('.json') ? await readJson<ContainerMount[]>(path.join(this.usesDir, f)) : undefined;
      if (u) this.uses.set(f.slice(0, -5), u);
    }
  }

  private driver(name: string): VolumeDriver {
    const d = this.deps.driver(name);
    if (!d) throw new NotFoundError(`error looking up volume plugin ${name}: plugin "${name}" not found (plugin volume.${name} is not loaded; see berth plugins)`);
    return d;
  }

  list(): VolumeRecord[] {
    return [...this.records.values()].sort((a, b) => a.Name.localeCompare(b.Name));
  }

  get(name: string): VolumeRecord {
    const r = this.records.get(name);
    if (!r) throw new NotFoundError(`get ${name}: no such volume`);
    return r;
  }

  /** Containers whose mounts name the volume. */
  usersOf(name: string): string[] {
    return [...this.uses.entries()].filter(([, ms]) => ms.some((m) => m.Type === 'volume' && m.Source === name)).map(([id]) => id);
  }

  async create(req: { Name?: string; Driver?: string; DriverOpts?: Record<string, string> | null; Labels?: Record<string, string> | null } = {}, anonymous = false): Promise<VolumeRecord> {
    const name = req.Name || randomBytes(32).toString('hex');
    if (!VOLUME_NAME.test(name)) throw new InvalidArgumentError(`invalid volume name ${JSON.stringify(name)}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
    const driverName = req.Driver || 'local';
    const existing = this.records.get(name);
    if (existing) {
      if (existing.Driver !== driverName) throw new ConflictError(`volume ${name} already exists with driver ${existing.Driver}`);
      return existing;
    }
    const driver = this.driver(driverName);
    const info = await driver.create({ name, options: req.DriverOpts ?? {} });
    const rec: VolumeRecord = {
      Name: name,
      Driver: driverName,
      Mountpoint: info.mountpoint,
      CreatedAt: new Date().toISOString(),
      Labels: req.Labels ?? {},
      Options: req.DriverOpts ?? {},
      Scope: 'local',
      Anonymous: anonymous,
      Seeded: false,
    };
    await this.saveRecord(rec);
    return rec;
  }

  private async saveRecord(rec: VolumeRecord): Promise<void> {
    await writeJsonAtomic(path.join(this.recordsDir, `${rec.Name}.json`), rec);
    this.records.set(rec.Name, rec);
  }

  async remove(name: string, opts: { force?: boolean } = {}): Promise<void> {
    const rec = this.records.get(name);
    if (!rec) {
      if (opts.force) return;
      throw new NotFoundError(`get ${name}: no such volume`);
    }
    const users = this.usersOf(name);
    if (users.length) {
      throw new ConflictError(`remove ${name}: volume is in use - [${users.map((u) => `${this.deps.nameOf(u) ?? ''} ${u}`.trim()).join(', ')}]`);
    }
    await this.driver(rec.Driver).remove(name);
    await fs.promises.rm(path.join(this.recordsDir, `${name}.json`), { force: true });
    this.records.delete(name);
  }

  /** Unused volumes go: anonymous ones, or all with `all`. */
  async prune(all = false): Promise<{ VolumesDeleted: string[]; SpaceReclaimed: number }> {
    const deleted: string[] = [];
    let space = 0;
    for (const rec of this.list()) {
      if ((!all && !rec.Anonymous) || this.usersOf(rec.Name).length) continue;
      space += await du(rec.Mountpoint);
      await this.remove(rec.Name);
      deleted.push(rec.Name);
    }
    return { VolumesDeleted: deleted, SpaceReclaimed: space };
  }

  // ---- containers ---------------------------------------------------------------------------

  /**
   * At create: make the volumes the container names (and anonymous ones) with `driver`
   * (HostConfig.VolumeDriver, else local), record its mounts.
   */
  async attach(containerId: string, mounts: ContainerMount[], driver = 'local'): Promise<ContainerMount[]> {
    const made: string[] = [];
    try {
      const resolved: ContainerMount[] = [];
      for (const m of mounts) {
        if (m.Type !== 'volume') {
          resolved.push(m);
          continue;
        }
        const anonymous = !m.Source;
        if (anonymous || !this.records.has(m.Source)) {
          const rec = await this.create({ Name: m.Source || undefined, Driver: driver }, anonymous);
          made.push(rec.Name);
          resolved.push({ ...m, Source: rec.Name });
        } else resolved.push(m);
      }
      // No file for a container without mounts: its absence reads as none (saves two fsyncs a create).
      if (resolved.length) await writeJsonAtomic(path.join(this.usesDir, `${containerId}.json`), resolved);
      else await fs.promises.rm(path.join(this.usesDir, `${containerId}.json`), { force: true });
      this.uses.set(containerId, resolved);
      return resolved;
    } catch (err) {
      for (const n of made) await this.remove(n, { force: true }).catch(() => undefined);
      throw err;
    }
  }

  mountsOf(containerId: string): ContainerMount[] {
    return this.uses.get(containerId) ?? [];
  }

  /** The container is removed: it stops using its volumes; with `removeAnonymous` (rm -v) its anonymous ones go. */
  async detach(containerId: string, removeAnonymous: boolean): Promise<void> {
    const mounts = this.uses.get(containerId) ?? [];
    this.uses.delete(containerId);
    await fs.promises.rm(path.join(this.usesDir, `${containerId}.json`), { force: true });
    if (!removeAnonymous) return;
    for (const m of mounts) {
      const rec = m.Type === 'volume' ? this.records.get(m.Source) : undefined;
      if (rec?.Anonymous && !this.usersOf(rec.Name).length) {
        await this.remove(rec.Name).catch((err) => this.deps.log.warn('could not remove anonymous volume', { volume: rec.Name, error: (err as Error).message }));
      }
    }
  }

  /**
   * At start, with the rootfs mounted: seed new volumes from the image's content at their path,
   * and return the launch plan's mounts for the container's volumes, binds and tmpfs.
   */
  async planMounts(containerId: string, rootfs: string): Promise<MountSpec[]> {
    const out: MountSpec[] = [];
    for (const m of this.mountsOf(containerId)) {
      const rw = m.ReadOnly ? 'ro' : 'rw';
      if (m.Type === 'tmpfs') {
        const opts = new Set(['nosuid', 'nodev', 'noexec', ...m.Options]);
        if (opts.has('exec')) opts.delete('noexec');
        if (opts.has('suid')) opts.delete('nosuid');
        if (opts.has('dev')) opts.delete('nodev');
        opts.delete('exec');
        opts.delete('suid');
        opts.delete('dev');
        out.push({ destination: m.Target, type: 'tmpfs', source: 'tmpfs', options: [...opts, ...(m.ReadOnly ? ['ro'] : [])] });
      } else if (m.Type === 'bind') {
        out.push({ destination: m.Target, type: 'bind', source: m.Source, options: ['rbind', rw, m.Options[0] || 'rprivate'] });
      } else {
        const rec = this.get(m.Source);
        const driver = this.driver(rec.Driver);
        const source = driver.mount ? await driver.mount(rec.Name, containerId) : driver.mountpoint(rec.Name);
        if (!rec.Seeded) {
          if (!m.NoCopy) await seed(rootfs, m.Target, source);
          rec.Seeded = true;
          await this.saveRecord(rec);
        }
        out.push({ destination: m.Target, type: 'bind', source, options: ['rbind', rw, 'rprivate'] });
      }
    }
    return out;
  }

  /** The container stopped: drivers that count mounts hear of it. */
  async release(containerId: string): Promise<void> {
    for (const m of this.mountsOf(containerId)) {
      if (m.Type !== 'volume') continue;
      const rec = this.records.get(m.Source);
      const driver = rec && this.deps.driver(rec.Driver);
      await driver?.unmount?.(rec!.Name, containerId).catch(() => undefined);
    }
  }

  /** Docker's `Mounts` of container inspect. */
  inspectMounts(containerId: string) {
    return this.mountsOf(containerId).map((m) => {
      const rec = m.Type === 'volume' ? this.records.get(m.Source) : undefined;
      return {
        Type: m.Type,
        ...(m.Type === 'volume' ? { Name: m.Source } : {}),
        Source: m.Type === 'volume' ? (rec?.Mountpoint ?? '') : m.Source,
        Destination: m.Target,
        Driver: m.Type === 'volume' ? (rec?.Driver ?? 'local') : undefined,
        Mode: m.ReadOnly ? 'ro' : '',
        RW: !m.ReadOnly,
        Propagation: m.Type === 'bind' ? m.Options[0] || 'rprivate' : '',
      };
    });
  }

  /** Docker's volume shape (`GET /volumes`, `/volumes/{name}`); Size is measured only for `system df`, as dockerd does. */
  view(rec: VolumeRecord, size = -1) {
    return {
      Name: rec.Name,
      Driver: rec.Driver,
      Mountpoint: rec.Mountpoint,
      CreatedAt: rec.CreatedAt,
      Labels: rec.Labels,
      Options: rec.Options,
      Scope: rec.Scope,
      UsageData: { RefCount: this.usersOf(rec.Name).length, Size: size },
    };
  }

  /** Every volume with the bytes it holds (`system df`). */
  async usage() {
    return Promise.all(this.list().map(async (rec) => this.view(rec, await du(rec.Mountpoint))));
  }
}

/**
 * Copy the image's directory at `target` into an empty volume (Docker does this the first time).
 * The directory is resolved inside the rootfs; a path that leads out of it (a symlink) is skipped.
 */
async function seed(rootfs: string, target: string, volume: string): Promise<void> {
  const src = path.join(rootfs, target);
  let real: string;
  try {
    real = await fs.promises.realpath(src);
  } catch {
    return; // nothing at that path in the image
  }
  const root = await fs.promises.realpath(rootfs);
  if (real !== root && !real.startsWith(root + '/')) return;
  if (!(await fs.promises.stat(real)).isDirectory()) return;
  if ((await fs.promises.readdir(volume)).length) return; // only an empty volume is seeded
  if (!(await fs.promises.readdir(real)).length) return;
  await run('cp', ['-a', '--', `${real}/.`, `${volume}/`]);
  // The volume root takes the mode and owner of the image's directory, as Docker does.
  const st = await fs.promises.stat(real);
  await fs.promises.chmod(volume, st.mode & 0o7777);
  await fs.promises.chown(volume, st.uid, st.gid);
}

async function du(dir: string): Promise<number> {
  try {
    const { stdout } = await run('du', ['-sb', dir]);
    return Number(stdout.split(/\s/)[0]) || 0;
  } catch {
    return 0;
  }
}
