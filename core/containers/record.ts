/**
 * Container records: Docker's Config/HostConfig/State shapes, one `config.json` per container in
 * `<root>/containers/<id>/` (written atomically), indexed in memory by id and name.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConflictError, InvalidArgumentError, NotFoundError } from '../contracts/errors';
import { ensureDir, readJson, writeFileAtomic } from '../util/fs';
import type { LogConfig } from './log-config';
import type { HealthConfig, HealthState } from './health';

export interface ContainerState {
  Status: 'created' | 'running' | 'paused' | 'restarting' | 'removing' | 'exited' | 'dead';
  Running: boolean;
  Paused: boolean;
  Restarting: boolean;
  OOMKilled: boolean;
  Dead: boolean;
  Pid: number;
  ExitCode: number;
  Error: string;
  StartedAt: string;
  FinishedAt: string;
  /** Present while the container has a healthcheck (core/containers/health.ts). */
  Health?: HealthState;
}

/** The parts of Docker's container Config berth honours. */
export interface ContainerConfigSpec {
  Hostname?: string;
  Domainname?: string;
  User?: string;
  AttachStdin?: boolean;
  AttachStdout?: boolean;
  AttachStderr?: boolean;
  Tty?: boolean;
  OpenStdin?: boolean;
  StdinOnce?: boolean;
  Env?: string[] | null;
  Cmd?: string[] | null;
  Entrypoint?: string[] | null;
  Image: string;
  WorkingDir?: string;
  Labels?: Record<string, string> | null;
  StopSignal?: string;
  StopTimeout?: number;
  ExposedPorts?: Record<string, object>;
  Volumes?: Record<string, object> | null;
  Healthcheck?: HealthConfig;
  MacAddress?: string;
}

export interface HostConfigSpec {
  Binds?: string[] | null;
  NetworkMode?: string;
  Privileged?: boolean;
  CapAdd?: string[] | null;
  CapDrop?: string[] | null;
  ReadonlyRootfs?: boolean;
  AutoRemove?: boolean;
  RestartPolicy?: { Name: string; MaximumRetryCount?: number };
  Init?: boolean | null;
  /** Completed at create from the daemon's default (core/containers/log-config.ts). */
  LogConfig?: LogConfig;
  [key: string]: unknown;
}

export interface ContainerRecord {
  Id: string;
  Name: string;
  Created: string;
  /** Image ID (config digest). */
  Image: string;
  /** The chain ID of the image's top layer (null for an empty image). */
  TopLayer: string | null;
  Path: string;
  Args: string[];
  Config: ContainerConfigSpec;
  HostConfig: HostConfigSpec;
  State: ContainerState;
  RestartCount: number;
  /** Set by stop/kill: restart policies leave such a container alone until started again. */
  ManuallyStopped?: boolean;
  Driver: string;
  /** Process spec details the start needs (resolved at create). */
  Process: { env: string[]; cwd: string; user: string };
}

export function initialState(): ContainerState {
  return {
    Status: 'created',
    Running: false,
    Paused: false,
    Restarting: false,
    OOMKilled: false,
    Dead: false,
    Pid: 0,
    ExitCode: 0,
    Error: '',
    StartedAt: '0001-01-01T00:00:00Z',
    FinishedAt: '0001-01-01T00:00:00Z',
  };
}

const NAME = /^\/?[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

const ADJECTIVES = ['brave', 'calm', 'eager', 'fond', 'gentle', 'happy', 'jolly', 'keen', 'lucid', 'merry', 'nifty', 'proud', 'quiet', 'sharp', 'sunny', 'witty'];
const NOUNS = ['anchor', 'buoy', 'capstan', 'dinghy', 'ferry', 'galley', 'harbor', 'jetty', 'keel', 'lighthouse', 'mooring', 'pier', 'quay', 'rudder', 'schooner', 'wharf'];

/** The prefix of a removed container's state dir while it is being deleted. */
const REMOVED = 'removed-';

export class ContainerStore {
  readonly dir: string;
  private readonly byId = new Map<string, ContainerRecord>();
  /** Names handed out to creates that have not saved their record yet: name -> container id. */
  private readonly reserved = new Map<string, string>();
  /** Per container: the last file write queued, so writes land in the order they were asked. */
  private readonly writes = new Map<string, Promise<void>>();

  constructor(root: string) {
    this.dir = path.join(root, 'containers');
  }

  async open(): Promise<void> {
    await ensureDir(this.dir);
    for (const name of await fs.promises.readdir(this.dir)) {
      if (name.startsWith(REMOVED)) await fs.promises.rm(path.join(this.dir, name), { recursive: true, force: true });
      if (!/^[a-f0-9]{64}$/.test(name)) continue;
      const rec = await readJson<ContainerRecord>(path.join(this.dir, name, 'config.json'));
      if (rec) this.byId.set(rec.Id, rec);
      else await fs.promises.rm(path.join(this.dir, name), { recursive: true, force: true }); // create never finished
    }
  }

  stateDir(id: string): string {
    return path.join(this.dir, id);
  }

  list(): ContainerRecord[] {
    return [...this.byId.values()];
  }

  /** By full id, unique id prefix, or name (with or without the leading slash). */
  find(ref: string): ContainerRecord | undefined {
    if (this.byId.has(ref)) return this.byId.get(ref);
    const name = ref.startsWith('/') ? ref : `/${ref}`;
    const byName = this.list().find((c) => c.Name === name);
    if (byName) return byName;
    if (/^[a-f0-9]{1,64}$/.test(ref)) {
      const matches = this.list().filter((c) => c.Id.startsWith(ref));
      if (matches.length > 1) throw new ConflictError(`multiple containers found with provided prefix: ${ref}`);
      return matches[0];
    }
    return undefined;
  }

  get(ref: string): ContainerRecord {
    const c = this.find(ref);
    if (!c) throw new NotFoundError(`No such container: ${ref}`);
    return c;
  }

  newId(): string {
    let id: string;
    do id = randomBytes(32).toString('hex');
    while (this.byId.has(id) || /^\d+$/.test(id.slice(0, 12)));
    return id;
  }

  /**
   * Validate a requested name, or make one up; names are unique (409 otherwise). The name stays
   * reserved for `forId` until releaseName: a create has awaits between choosing the name and
   * saving the record, and two creates of one name at once must not both get it.
   */
  reserveName(requested: string | undefined, forId: string): string {
    const holderOf = (name: string) => this.list().find((c) => c.Name === name && c.Id !== forId)?.Id ?? [...this.reserved].find(([n, id]) => n === name && id !== forId)?.[1];
    if (requested) {
      if (!NAME.test(requested)) throw new InvalidArgumentError(`Invalid container name (${requested}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
      const name = requested.startsWith('/') ? requested : `/${requested}`;
      const holder = holderOf(name);
      if (holder)
        throw new ConflictError(`Conflict. The container name "${name}" is already in use by container "${holder}". You have to remove (or rename) that container to be able to reuse that name.`);
      this.reserved.set(name, forId);
      return name;
    }
    for (;;) {
      const pick = (a: string[]) => a[Math.floor(Math.random() * a.length)];
      const name = `/${pick(ADJECTIVES)}_${pick(NOUNS)}${this.list().length > 100 ? Math.floor(Math.random() * 1000) : ''}`;
      if (!holderOf(name)) {
        this.reserved.set(name, forId);
        return name;
      }
    }
  }

  /** Drop the names reserved for `id` (its record, once saved, holds its name itself). */
  releaseName(id: string): void {
    for (const [name, holder] of this.reserved) if (holder === id) this.reserved.delete(name);
  }

  async save(rec: ContainerRecord): Promise<void> {
    await this.write(rec.Id, rec);
    this.byId.set(rec.Id, rec);
    this.releaseName(rec.Id); // the record holds its name now (a rename reserved the new one)
  }

  /**
   * Apply `change` to the record once it is on disk, so no reader sees a state that a crash of
   * berthd would lose. `change` runs twice (on a draft, then on the record) and must not depend on
   * being run once.
   */
  async update(rec: ContainerRecord, change: (draft: ContainerRecord) => void): Promise<void> {
    const draft = structuredClone(rec);
    change(draft);
    await this.write(rec.Id, draft);
    change(rec);
  }

  /**
   * Write one record's file, in call order: two saves in flight (a probe's and an exec's) must not
   * land the older one last. The content is taken now, so the last call's state is what stays.
   */
  private write(id: string, rec: ContainerRecord): Promise<void> {
    const json = JSON.stringify(rec, null, 2) + '\n';
    const file = path.join(this.stateDir(id), 'config.json');
    const done = (this.writes.get(id) ?? Promise.resolve())
      .catch(() => undefined)
      .then(async () => {
        await ensureDir(path.dirname(file));
        // A `--rm` container is removed at its exit and never outlives a reboot: its record
        // needs no fsync, only an atomic replace (three fewer syncs on each `run --rm`).
        await writeFileAtomic(file, json, 0o600, rec.HostConfig.AutoRemove ? 'atomic' : 'durable');
      });
    this.writes.set(id, done);
    void done
      .finally(() => {
        if (this.writes.get(id) === done) this.writes.delete(id);
      })
      .catch(() => undefined);
    return done;
  }

  async delete(id: string): Promise<void> {
    this.byId.delete(id);
    await this.writes.get(id)?.catch(() => undefined); // a write landing after the rm would leave the dir behind
    // Renamed away, then deleted unawaited: the removal answers without a trip through the
    // thread pool per file. A crash in between leaves a `removed-` dir for open() to delete.
    const doomed = path.join(this.dir, REMOVED + id);
    try {
      await fs.promises.rename(this.stateDir(id), doomed);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    void fs.promises.rm(doomed, { recursive: true, force: true }).catch(() => undefined);
  }
}
