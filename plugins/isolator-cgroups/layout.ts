/**
 * Which cgroup hierarchies this host has, which controllers each carries, and where berthd itself
 * sits in each of them. Read once at init from /proc/self/mountinfo and /proc/self/cgroup (both
 * injectable, so tests can point the plugin at a fake tree in a temp dir).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidArgumentError } from '../../core/plugin';

export type CgroupVersion = '1' | '2' | 'hybrid';

/** Which hierarchies berth uses: all that are mounted (`auto`), or only the v1 or the v2 ones. */
export type HierarchyChoice = 'auto' | 'v1' | 'v2';

export interface Hierarchy {
  kind: 'v1' | 'v2';
  /** Where the hierarchy is mounted, e.g. /sys/fs/cgroup/memory or /sys/fs/cgroup/unified. */
  mountPoint: string;
  /** v1: the controllers bound to it; v2: those it offers below berthd's cgroup (may be empty). */
  controllers: string[];
  /** berthd's own cgroup in it, as /proc/self/cgroup names it (`/process_api/abc`). */
  ownPath: string;
  /** The same as a directory on the host. */
  ownDir: string;
}

export interface CgroupLayout {
  version: CgroupVersion;
  hierarchies: Hierarchy[];
  /** The cgroup2 hierarchy when one is mounted (in hybrid mode often without controllers). */
  unified?: Hierarchy;
  /** controller -> the hierarchy that carries it (v1 wins over v2 for a controller bound to both). */
  byController: Map<string, Hierarchy>;
}

export interface LayoutSource {
  /** Text of /proc/self/mountinfo. */
  mountinfo: string;
  /** Text of /proc/self/cgroup. */
  selfCgroup: string;
}

/** Controllers berth uses; others (net_cls, perf_event, hugetlb, rdma, misc) are left alone. */
export const KNOWN_CONTROLLERS = ['cpu', 'cpuacct', 'cpuset', 'memory', 'devices', 'freezer', 'blkio', 'pids', 'io'];

/** mountinfo escapes spaces and such as \040. */
function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

interface CgroupMount {
  type: 'cgroup' | 'cgroup2';
  root: string;
  mountPoint: string;
  superOptions: string[];
}

export function parseCgroupMounts(mountinfo: string): CgroupMount[] {
  const out: CgroupMount[] = [];
  for (const line of mountinfo.split('\n')) {
    if (!line.trim()) continue;
    const [left, right] = line.split(' - ');
    if (!right) continue;
    const [fstype, , superOpts = ''] = right.split(' ');
    if (fstype !== 'cgroup' && fstype !== 'cgroup2') continue;
    const f = left.split(' ');
    out.push({ type: fstype, root: unescapeMountinfo(f[3]), mountPoint: unescapeMountinfo(f[4]), superOptions: superOpts.split(',') });
  }
  return out;
}

/** `N:ctrl,ctrl:/path` lines; `0::/path` is the v2 one. */
export function parseSelfCgroup(text: string): { id: string; controllers: string[]; path: string }[] {
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => {
      const a = l.indexOf(':');
      const b = l.indexOf(':', a + 1);
      return { id: l.slice(0, a), controllers: l.slice(a + 1, b) ? l.slice(a + 1, b).split(',') : [], path: l.slice(b + 1) };
    });
}

/** The host directory of cgroup `path` in a hierarchy whose mount shows cgroup `root` at `mountPoint`. */
function dirOf(mount: CgroupMount, path: string): string {
  const root = mount.root === '/' ? '' : mount.root;
  const rel = root && (path === root || path.startsWith(`${root}/`)) ? path.slice(root.length) : path;
  return join(mount.mountPoint, rel);
}

function readControllers(dir: string): string[] {
  try {
    return readFileSync(join(dir, 'cgroup.controllers'), 'utf8').trim().split(/\s+/).filter(Boolean);
  } catch {
    return [];
  }
}

export function hostLayoutSource(): LayoutSource {
  return { mountinfo: readFileSync('/proc/self/mountinfo', 'utf8'), selfCgroup: readFileSync('/proc/self/cgroup', 'utf8') };
}

/**
 * Work out the layout. `fromRoot`: containers go below a cgroup path taken from each hierarchy's
 * root rather than below berthd's own cgroup (v2's usable controllers are then the root's).
 * `use`: leave out the v2 (`v1`) or the v1 hierarchies (`v2`: a hybrid host used as a v2 one).
 * Throws when no cgroup hierarchy (of the kind asked for) is mounted.
 */
export function detectLayout(src: LayoutSource = hostLayoutSource(), fromRoot = false, use: HierarchyChoice = 'auto'): CgroupLayout {
  const mounts = parseCgroupMounts(src.mountinfo);
  const self = parseSelfCgroup(src.selfCgroup);
  const hierarchies: Hierarchy[] = [];
  const byController = new Map<string, Hierarchy>();
  const seen = new Set<string>();

  for (const entry of self) {
    if (use === 'v2' || entry.id === '0' || !entry.controllers.length || entry.controllers.some((c) => c.startsWith('name='))) continue;
    // The first mount whose options carry exactly this hierarchy's controllers (bind mounts repeat it).
    const mount = mounts.find((m) => m.type === 'cgroup' && entry.controllers.every((c) => m.superOptions.includes(c)));
    if (!mount || seen.has(mount.mountPoint)) continue;
    seen.add(mount.mountPoint);
    const h: Hierarchy = { kind: 'v1', mountPoint: mount.mountPoint, controllers: entry.controllers, ownPath: entry.path, ownDir: dirOf(mount, entry.path) };
    hierarchies.push(h);
    for (const c of entry.controllers) byController.set(c, h);
  }

  let unified: Hierarchy | undefined;
  const v2entry = self.find((e) => e.id === '0');
  const v2mount = mounts.find((m) => m.type === 'cgroup2');
  if (v2entry && v2mount && use !== 'v1') {
    const ownDir = dirOf(v2mount, v2entry.path);
    // Controllers bound to a v1 hierarchy cannot be enabled in v2 as well.
    const controllers = readControllers(fromRoot ? v2mount.mountPoint : ownDir).filter((c) => !byController.has(c));
    unified = { kind: 'v2', mountPoint: v2mount.mountPoint, controllers, ownPath: v2entry.path, ownDir };
    hierarchies.push(unified);
    for (const c of controllers) byController.set(c, unified);
  }

  if (!hierarchies.length) {
    const kind = use === 'auto' ? 'cgroup and cgroup2' : use === 'v1' ? 'cgroup (v1, as hierarchy "v1" asks)' : 'cgroup2 (as hierarchy "v2" asks)';
    throw new Error(`no cgroup hierarchy is mounted (looked for ${kind} in /proc/self/mountinfo)`);
  }
  const hasV1 = hierarchies.some((h) => h.kind === 'v1');
  const version: CgroupVersion = hasV1 && unified ? 'hybrid' : hasV1 ? '1' : '2';
  return { version, hierarchies, unified, byController };
}

/** Sorted names of the controllers berth can use on this host (v2's freezing is built in). */
export function controllerNames(layout: CgroupLayout): string[] {
  return [...layout.byController.keys()].sort();
}

const CGROUP_NAME = /^[A-Za-z0-9_.:@-]{1,255}$/;

/**
 * HostConfig.CgroupParent (the CRI's cgroup_parent, e.g. /kubepods/besteffort/pod<uid>): a path
 * taken below berth's own parent whether written absolute or not, so a container never lands
 * outside the cgroup berthd was started in.
 */
export function cgroupSubParent(hostConfig: Record<string, unknown> | undefined): string[] {
  const raw = hostConfig?.CgroupParent;
  if (raw === undefined || raw === null || raw === '') return [];
  const parts = typeof raw === 'string' ? raw.split('/').filter(Boolean) : [];
  if (!parts.length || parts.some((p) => p === '.' || p === '..' || !CGROUP_NAME.test(p))) {
    throw new InvalidArgumentError(`HostConfig.CgroupParent: expected a cgroup path like /kubepods/pod1 (names of letters, digits and _.:@-, no . or ..), got ${JSON.stringify(raw)}`);
  }
  return parts;
}
