/**
 * A fake cgroup tree in a temp dir for unit tests of isolator.cgroups: plain directories and files
 * plus a CgroupFs that plays the kernel's part (control files appear on mkdir, subtree_control
 * takes +/- lists, cgroup.freeze updates cgroup.events, cgroup.procs appends, rmdir refuses a
 * populated cgroup, cgroup.kill empties it). Every write is recorded in order.
 */
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Bpf, BpfInsn } from '../../core/sys/bpf';
import type { CgroupFs } from '../../plugins/isolator-cgroups/cgfs';

export const V2_FILES: Record<string, string> = {
  'cgroup.procs': '',
  'cgroup.subtree_control': '',
  'cgroup.events': 'populated 0\nfrozen 0\n',
  'cgroup.freeze': '0\n',
  'cgroup.kill': '',
  'cpu.max': 'max 100000\n',
  'cpu.weight': '100\n',
  'cpu.stat': 'usage_usec 0\nuser_usec 0\nsystem_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n',
  'memory.max': 'max\n',
  'memory.swap.max': 'max\n',
  'memory.low': '0\n',
  'memory.current': '0\n',
  'memory.events': 'low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n',
  'memory.stat': 'anon 0\nfile 0\n',
  'pids.max': 'max\n',
  'pids.current': '0\n',
  'io.weight': 'default 100\n',
  'io.stat': '',
  'cpuset.cpus': '\n',
  'cpuset.mems': '\n',
  'cpuset.cpus.effective': '0-1\n',
  'cpuset.mems.effective': '0\n',
};

export const V1_FILES: Record<string, Record<string, string>> = {
  memory: {
    'memory.limit_in_bytes': '9223372036854771712\n',
    'memory.memsw.limit_in_bytes': '9223372036854771712\n',
    'memory.soft_limit_in_bytes': '9223372036854771712\n',
    'memory.swappiness': '60\n',
    'memory.usage_in_bytes': '0\n',
    'memory.max_usage_in_bytes': '0\n',
    'memory.failcnt': '0\n',
    'memory.oom_control': 'oom_kill_disable 0\nunder_oom 0\noom_kill 0\n',
    'memory.stat': 'cache 0\nrss 0\n',
  },
  cpu: { 'cpu.shares': '1024\n', 'cpu.cfs_period_us': '100000\n', 'cpu.cfs_quota_us': '-1\n', 'cpu.stat': 'nr_periods 0\nnr_throttled 0\nthrottled_time 0\n' },
  cpuacct: { 'cpuacct.usage': '0\n', 'cpuacct.usage_percpu': '0 0\n', 'cpuacct.stat': 'user 0\nsystem 0\n' },
  cpuset: { 'cpuset.cpus': '\n', 'cpuset.mems': '\n', 'cpuset.effective_cpus': '\n', 'cpuset.effective_mems': '\n' },
  pids: { 'pids.max': 'max\n', 'pids.current': '0\n', 'pids.events': 'max 0\n' },
  devices: { 'devices.allow': '', 'devices.deny': '', 'devices.list': 'a *:* rwm\n' },
  freezer: { 'freezer.state': 'THAWED\n' },
  blkio: { 'blkio.weight': '500\n', 'blkio.throttle.io_service_bytes_recursive': '', 'blkio.throttle.io_serviced_recursive': '' },
};

export interface FakeHierarchy {
  /** v1: controllers, e.g. ['cpu', 'cpuacct']; v2: [] (the controllers go in `v2Controllers`). */
  controllers: string[];
  kind: 'v1' | 'v2';
  /** berthd's cgroup path in it. */
  own: string;
}

export class FakeCgroupTree {
  readonly base = mkdtempSync('/tmp/berth-cgfake-');
  readonly writes: [string, string][] = [];
  private readonly kindOf = new Map<string, { kind: 'v1' | 'v2'; controllers: string[] }>();
  mountinfo = '';
  selfCgroup = '';
  /** Make writes to these file names fail with this errno code. */
  failWrites = new Map<string, string>();

  /** `v2Controllers`: what the v2 root (and berthd's cgroup) offers. */
  constructor(hierarchies: FakeHierarchy[], v2Controllers: string[] = []) {
    let n = 1;
    for (const h of hierarchies) {
      const name = h.kind === 'v2' ? 'unified' : h.controllers.join(',');
      const mount = join(this.base, name);
      mkdirSync(mount);
      this.kindOf.set(mount, { kind: h.kind, controllers: h.controllers });
      this.mountinfo += `${30 + n} 23 0:${40 + n} / ${mount} rw,relatime - ${h.kind === 'v2' ? 'cgroup2 cgroup2 rw' : `cgroup cgroup rw,${h.controllers.join(',')}`}\n`;
      this.selfCgroup += h.kind === 'v2' ? `0::${h.own}\n` : `${n}:${h.controllers.join(',')}:${h.own}\n`;
      n++;
      this.populate(mount, mount, true);
      if (h.kind === 'v2') writeFileSync(join(mount, 'cgroup.controllers'), `${v2Controllers.join(' ')}\n`);
      // berthd's own cgroup and its ancestors exist already, made by "someone else".
      let dir = mount;
      for (const part of h.own.split('/').filter(Boolean)) {
        const parent = dir;
        dir = join(dir, part);
        mkdirSync(dir);
        this.populate(mount, dir, false);
        if (h.kind === 'v2') writeFileSync(join(dir, 'cgroup.controllers'), `${v2Controllers.join(' ')}\n`);
        if (h.controllers.includes('cpuset')) {
          writeFileSync(join(dir, 'cpuset.cpus'), readFileSync(join(parent, 'cpuset.cpus')));
          writeFileSync(join(dir, 'cpuset.mems'), readFileSync(join(parent, 'cpuset.mems')));
        }
      }
    }
  }

  private mountOf(dir: string): string {
    for (const m of this.kindOf.keys()) if (dir === m || dir.startsWith(`${m}/`)) return m;
    throw new Error(`not in the fake tree: ${dir}`);
  }

  private populate(mount: string, dir: string, isRoot: boolean): void {
    const { kind, controllers } = this.kindOf.get(mount)!;
    writeFileSync(join(dir, 'cgroup.procs'), '');
    if (kind === 'v2') {
      for (const [f, v] of Object.entries(V2_FILES)) writeFileSync(join(dir, f), v);
      const parentControl = isRoot ? '' : readFileSync(join(dirname(dir), 'cgroup.subtree_control'), 'utf8');
      writeFileSync(join(dir, 'cgroup.controllers'), parentControl.trim() ? `${parentControl.trim()}\n` : '\n');
    } else {
      for (const c of controllers) for (const [f, v] of Object.entries(V1_FILES[c] ?? {})) writeFileSync(join(dir, f), v);
      if (controllers.includes('cpuset') && isRoot) {
        writeFileSync(join(dir, 'cpuset.cpus'), '0-1\n');
        writeFileSync(join(dir, 'cpuset.mems'), '0\n');
        writeFileSync(join(dir, 'cpuset.effective_cpus'), '0-1\n');
        writeFileSync(join(dir, 'cpuset.effective_mems'), '0\n');
      }
      // The kernel has no freezer.state in a root cgroup.
      if (isRoot) rmSync(join(dir, 'freezer.state'), { force: true });
    }
  }

  path(...parts: string[]): string {
    return join(this.base, ...parts);
  }

  read(...parts: string[]): string {
    return readFileSync(join(this.base, ...parts), 'utf8');
  }

  writesTo(fileName: string): string[] {
    return this.writes.filter(([f]) => basename(f) === fileName).map(([, v]) => v);
  }

  readonly fs: CgroupFs = {
    mkdir: (dir) => {
      if (existsSync(dir)) return false;
      mkdirSync(dir);
      this.populate(this.mountOf(dir), dir, false);
      return true;
    },
    rmdir: (dir) => {
      if (!existsSync(dir)) throw Object.assign(new Error(`ENOENT: ${dir}`), { code: 'ENOENT' });
      if (readFileSync(join(dir, 'cgroup.procs'), 'utf8').trim()) throw Object.assign(new Error(`EBUSY: ${dir}`), { code: 'EBUSY' });
      rmSync(dir, { recursive: true });
    },
    read: (file) => readFileSync(file, 'utf8'),
    exists: (p) => existsSync(p),
    write: (file, value) => {
      if (!existsSync(file)) throw Object.assign(new Error(`ENOENT: ${file}`), { code: 'ENOENT' });
      const name = basename(file);
      const fail = this.failWrites.get(name);
      if (fail) throw Object.assign(new Error(`${fail}: ${file}`), { code: fail });
      this.writes.push([file, value]);
      const dir = dirname(file);
      if (name === 'cgroup.subtree_control') {
        const on = new Set(readFileSync(file, 'utf8').split(/\s+/).filter(Boolean));
        for (const t of value.split(/\s+/)) {
          if (t.startsWith('+')) on.add(t.slice(1));
          else if (t.startsWith('-')) on.delete(t.slice(1));
        }
        writeFileSync(file, [...on].join(' '));
      } else if (name === 'cgroup.procs') appendFileSync(file, `${value}\n`);
      else if (name === 'cgroup.freeze') {
        writeFileSync(file, value);
        writeFileSync(join(dir, 'cgroup.events'), `populated 1\nfrozen ${value.trim()}\n`);
      } else if (name === 'cgroup.kill') writeFileSync(join(dir, 'cgroup.procs'), '');
      else writeFileSync(file, value);
    },
  };

  /** cgroup dir -> the device program attached to it (one at a time, as berth attaches them). */
  readonly devicePrograms = new Map<string, readonly BpfInsn[]>();

  readonly bpf: Bpf = {
    setDeviceProgram: (dir, insns) => {
      if (!existsSync(dir)) throw Object.assign(new Error(`ENOENT: ${dir}`), { code: 'ENOENT' });
      this.devicePrograms.set(dir, insns);
    },
    devicePrograms: (dir) => (this.devicePrograms.has(dir) ? [1] : []),
  };

  dispose(): void {
    rmSync(this.base, { recursive: true, force: true });
  }
}
