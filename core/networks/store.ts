/**
 * The network store: network records and containers' network settings, in memory and on disk
 * under `<root>/networks/` (records/, containers/; ipam/ holds host-local's state, see ipam.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConflictError, NotFoundError } from '../contracts/errors';
import { ensureDir, readJson, writeJsonAtomic } from '../util/fs';
import { type ContainerNet, type NetworkRecord, DEFAULT_NETWORK } from './records';

export class NetworkStore {
  private readonly dir: string;
  private readonly records = new Map<string, NetworkRecord>();
  private readonly containers = new Map<string, ContainerNet>();

  constructor(root: string) {
    this.dir = path.join(root, 'networks');
  }

  /** host-local's data folder (one subfolder per CNI network name). */
  get ipamDir(): string {
    return path.join(this.dir, 'ipam');
  }

  async open(): Promise<void> {
    for (const d of ['records', 'containers', 'ipam']) await ensureDir(path.join(this.dir, d));
    for (const f of await fs.promises.readdir(path.join(this.dir, 'records'))) {
      if (!f.endsWith('.json')) continue;
      const rec = await readJson<NetworkRecord>(path.join(this.dir, 'records', f));
      if (rec) this.records.set(rec.Id, rec);
    }
    for (const f of await fs.promises.readdir(path.join(this.dir, 'containers'))) {
      if (!f.endsWith('.json')) continue;
      const c = await readJson<ContainerNet>(path.join(this.dir, 'containers', f));
      if (c) this.containers.set(c.Id, c);
    }
  }

  // ---- network records ---------------------------------------------------------------------

  byName(name: string): NetworkRecord | undefined {
    return [...this.records.values()].find((r) => r.Name === name);
  }

  /** By name, full id or unique id prefix. */
  find(ref: string): NetworkRecord | undefined {
    const byName = this.byName(ref === 'default' ? DEFAULT_NETWORK : ref);
    if (byName) return byName;
    if (this.records.has(ref)) return this.records.get(ref);
    if (/^[a-f0-9]{1,64}$/.test(ref)) {
      const matches = [...this.records.values()].filter((r) => r.Id.startsWith(ref));
      if (matches.length > 1) throw new ConflictError(`network ${ref} is ambiguous (${matches.length} matches found based on ID prefix)`);
      return matches[0];
    }
    return undefined;
  }

  get(ref: string): NetworkRecord {
    const r = this.find(ref);
    if (!r) throw new NotFoundError(`network ${ref} not found`);
    return r;
  }

  list(): NetworkRecord[] {
    return [...this.records.values()].sort((a, b) => a.Name.localeCompare(b.Name));
  }

  async saveRecord(rec: NetworkRecord): Promise<void> {
    await writeJsonAtomic(path.join(this.dir, 'records', `${rec.Id}.json`), rec);
    this.records.set(rec.Id, rec);
  }

  async removeRecord(rec: NetworkRecord): Promise<void> {
    await fs.promises.rm(path.join(this.dir, 'records', `${rec.Id}.json`), { force: true });
    this.records.delete(rec.Id);
  }

  // ---- containers' network settings ----------------------------------------------------------

  container(id: string): ContainerNet | undefined {
    return this.containers.get(id);
  }

  /** The settings of a container that must have them (connect, disconnect). */
  requireContainer(id: string): ContainerNet {
    const c = this.containers.get(id);
    if (!c) throw new NotFoundError(`container ${id} has no network settings`);
    return c;
  }

  allContainers(): ContainerNet[] {
    return [...this.containers.values()];
  }

  /** Containers configured on a network (running or not). */
  usersOf(name: string): ContainerNet[] {
    return this.allContainers().filter((c) => name in c.Networks);
  }

  async save(cfg: ContainerNet): Promise<void> {
    await writeJsonAtomic(path.join(this.dir, 'containers', `${cfg.Id}.json`), cfg);
    this.containers.set(cfg.Id, cfg);
  }

  /** Runtime state (endpoints, host ports) on the start path: a reboot ends every container anyway. */
  async saveRuntime(cfg: ContainerNet): Promise<void> {
    await writeJsonAtomic(path.join(this.dir, 'containers', `${cfg.Id}.json`), cfg, 'atomic');
  }

  async forget(id: string): Promise<void> {
    this.containers.delete(id);
    await fs.promises.rm(path.join(this.dir, 'containers', `${id}.json`), { force: true });
  }
}
