/**
 * A container's mounts as the create request gives them: `-v`/Binds strings, `--mount` (Mounts),
 * `--tmpfs` and the image's VOLUMEs, checked and turned into binds and ContainerMounts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidArgumentError } from '../contracts/errors';

/** What a volume may be called (dockerd's rule). */
export const VOLUME_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** One mount of a container that is not a plain host-path bind of HostConfig.Binds. */
export interface ContainerMount {
  Type: 'volume' | 'bind' | 'tmpfs';
  /** Volume name, host path (bind) or '' (tmpfs). */
  Source: string;
  Target: string;
  ReadOnly: boolean;
  /** tmpfs options (size=, mode=, exec ...); for binds the propagation. */
  Options: string[];
  /** Don't copy the image's content into a new volume (`nocopy`). */
  NoCopy?: boolean;
}

function checkTarget(what: string, target: string): string {
  if (!target || !target.startsWith('/') || target.split('/').includes('..')) throw new InvalidArgumentError(`${what}: the container path ${JSON.stringify(target)} must be absolute, without ..`);
  if (path.posix.normalize(target) === '/') throw new InvalidArgumentError(`${what}: cannot mount over /`);
  return path.posix.normalize(target).replace(/\/$/, '');
}

const PROPAGATIONS = ['private', 'rprivate', 'shared', 'rshared', 'slave', 'rslave'];

/** A host-path bind of HostConfig.Binds (`/host:/ctr[:ro,rshared,...]`, checked by parseMounts) in parts. */
export function parseBind(bind: string): { source: string; target: string; readOnly: boolean; propagation: string } {
  const [source, target, opts = ''] = bind.split(':');
  const flags = opts.split(',');
  return { source, target: path.posix.normalize(target).replace(/\/$/, ''), readOnly: flags.includes('ro'), propagation: flags.find((f) => PROPAGATIONS.includes(f)) ?? 'rprivate' };
}

/**
 * Split a create request's mounts: host-path binds stay in HostConfig.Binds (isolator.namespaces
 * mounts them); named and anonymous volumes, --mount entries and --tmpfs become ContainerMounts.
 * Image VOLUMEs not covered by another mount become anonymous volumes (named later).
 */
export function parseMounts(hostConfig: Record<string, unknown>, imageVolumes: string[]): { binds: string[]; mounts: ContainerMount[] } {
  const binds: string[] = [];
  const mounts: ContainerMount[] = [];
  for (const b of (hostConfig.Binds as string[] | null | undefined) ?? []) {
    if (typeof b !== 'string') throw new InvalidArgumentError('HostConfig.Binds: expected a list of strings');
    const parts = b.split(':');
    if (parts.length === 1 || (parts.length === 2 && !parts[1].startsWith('/'))) {
      // `-v /data` or `-v /data:ro`: an anonymous volume
      const opts = parts.length === 2 ? parts[1].split(',') : [];
      mounts.push({ Type: 'volume', Source: '', Target: checkTarget(`invalid volume ${JSON.stringify(b)}`, parts[0]), ReadOnly: opts.includes('ro'), Options: [], NoCopy: opts.includes('nocopy') });
      continue;
    }
    if (parts[0].startsWith('/')) {
      binds.push(b);
      continue;
    }
    const [name, target, opts = ''] = parts;
    if (parts.length > 3 || !VOLUME_NAME.test(name))
      throw new InvalidArgumentError(`invalid volume ${JSON.stringify(b)}: expected NAME:/container/path[:ro] or /host/path:/container/path[:ro] (volume names: [a-zA-Z0-9][a-zA-Z0-9_.-])`);
    const flags = opts ? opts.split(',') : [];
    for (const f of flags) if (!['ro', 'rw', 'nocopy', 'z', 'Z'].includes(f)) throw new InvalidArgumentError(`invalid volume ${JSON.stringify(b)}: unknown option ${JSON.stringify(f)}`);
    mounts.push({ Type: 'volume', Source: name, Target: checkTarget(`invalid volume ${JSON.stringify(b)}`, target), ReadOnly: flags.includes('ro'), Options: [], NoCopy: flags.includes('nocopy') });
  }
  const list = hostConfig.Mounts;
  if (list !== undefined && list !== null && !Array.isArray(list)) throw new InvalidArgumentError('HostConfig.Mounts: expected a list of {Type, Source, Target, ReadOnly}');
  for (const [i, m] of ((list as Record<string, any>[] | null) ?? []).entries()) {
    const what = `HostConfig.Mounts[${i}]`;
    const target = checkTarget(what, String(m?.Target ?? m?.Destination ?? ''));
    const ro = m.ReadOnly === true;
    switch (m.Type) {
      case 'volume':
        if (m.Source && !VOLUME_NAME.test(m.Source)) throw new InvalidArgumentError(`${what}: invalid volume name ${JSON.stringify(m.Source)}`);
        mounts.push({ Type: 'volume', Source: m.Source ?? '', Target: target, ReadOnly: ro, Options: [], NoCopy: m.VolumeOptions?.NoCopy === true });
        break;
      case 'bind':
        if (typeof m.Source !== 'string' || !m.Source.startsWith('/')) throw new InvalidArgumentError(`${what}: bind source must be an absolute host path, got ${JSON.stringify(m.Source)}`);
        if (!fs.existsSync(m.Source)) throw new InvalidArgumentError(`${what}: bind source path does not exist: ${m.Source}`);
        mounts.push({ Type: 'bind', Source: m.Source, Target: target, ReadOnly: ro, Options: [m.BindOptions?.Propagation || 'rprivate'] });
        break;
      case 'tmpfs': {
        const opts: string[] = [];
        if (m.TmpfsOptions?.SizeBytes) opts.push(`size=${Number(m.TmpfsOptions.SizeBytes)}`);
        if (m.TmpfsOptions?.Mode) opts.push(`mode=${Number(m.TmpfsOptions.Mode).toString(8)}`);
        mounts.push({ Type: 'tmpfs', Source: '', Target: target, ReadOnly: ro, Options: opts });
        break;
      }
      default:
        throw new InvalidArgumentError(`${what}: unsupported mount type ${JSON.stringify(m?.Type)} (volume, bind, tmpfs)`);
    }
  }
  const tmpfs = hostConfig.Tmpfs;
  if (tmpfs !== undefined && tmpfs !== null && (typeof tmpfs !== 'object' || Array.isArray(tmpfs))) throw new InvalidArgumentError('HostConfig.Tmpfs: expected {"/path": "options"}');
  for (const [target, opts] of Object.entries((tmpfs as Record<string, string>) ?? {})) {
    const options = String(opts ?? '')
      .split(',')
      .filter(Boolean);
    for (const o of options)
      if (!/^(size=\d+[kmgKMG%]?|mode=[0-7]{3,4}|uid=\d+|gid=\d+|nr_inodes=\d+[kmg]?|ro|rw|exec|noexec|suid|nosuid|dev|nodev)$/.test(o)) {
        throw new InvalidArgumentError(`HostConfig.Tmpfs[${JSON.stringify(target)}]: unknown option ${JSON.stringify(o)}`);
      }
    mounts.push({ Type: 'tmpfs', Source: '', Target: checkTarget(`HostConfig.Tmpfs`, target), ReadOnly: options.includes('ro'), Options: options.filter((o) => o !== 'ro' && o !== 'rw') });
  }
  const targets = new Set<string>();
  for (const t of [...binds.map((b) => path.posix.normalize(b.split(':')[1]).replace(/\/$/, '')), ...mounts.map((m) => m.Target)]) {
    if (targets.has(t)) throw new InvalidArgumentError(`duplicate mount point: ${t}`);
    targets.add(t);
  }
  for (const v of imageVolumes) {
    const target = path.posix.normalize(v).replace(/\/$/, '');
    if (!target.startsWith('/') || target === '/' || targets.has(target)) continue;
    mounts.push({ Type: 'volume', Source: '', Target: target, ReadOnly: false, Options: [] });
  }
  return { binds, mounts };
}
