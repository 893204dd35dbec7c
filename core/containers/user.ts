/**
 * `-u user[:group]` resolution against the container's own /etc/passwd and /etc/group, read
 * through a resolver that never follows a symlink out of the rootfs.
 */
import * as fs from 'node:fs';
import { InvalidArgumentError } from '../contracts/errors';
import { ensureDirs, resolveInRoot } from '../layers/resolve';

export interface ResolvedUser {
  uid: number;
  gid: number;
  additionalGids: number[];
  home: string;
}

async function readInRoot(rootfs: string, file: string): Promise<string> {
  try {
    const { hostPath } = await resolveInRoot(rootfs, file.split('/').filter(Boolean), true);
    const st = await fs.promises.lstat(hostPath);
    if (!st.isFile() || st.size > 4 * 1024 * 1024) return '';
    return await fs.promises.readFile(hostPath, 'utf8');
  } catch {
    return '';
  }
}

/**
 * `spec` is Docker's `user[:group]`; `groupAdd` (HostConfig.GroupAdd) names more groups, by name
 * or number, that the process gets on top of the user's own supplementary groups.
 */
export async function resolveUser(rootfs: string, spec: string | undefined, groupAdd: string[] = []): Promise<ResolvedUser> {
  const [userPart, groupPart] = (spec || '0').split(':', 2);
  const passwd = (await readInRoot(rootfs, '/etc/passwd')).split('\n').map((l) => l.split(':'));
  const groups = (await readInRoot(rootfs, '/etc/group')).split('\n').map((l) => l.split(':'));
  const numeric = /^\d+$/.test(userPart);
  const entry = passwd.find((p) => p.length >= 7 && (numeric ? p[2] === userPart : p[0] === userPart));
  if (!entry && !numeric) throw new InvalidArgumentError(`unable to find user ${userPart}: no matching entries in passwd file`);
  const uid = numeric ? Number(userPart) : Number(entry![2]);
  let gid = entry ? Number(entry[3]) : 0;
  if (groupPart !== undefined && groupPart !== '') {
    if (/^\d+$/.test(groupPart)) gid = Number(groupPart);
    else {
      const g = groups.find((x) => x.length >= 3 && x[0] === groupPart);
      if (!g) throw new InvalidArgumentError(`unable to find group ${groupPart}: no matching entries in group file`);
      gid = Number(g[2]);
    }
  }
  const name = entry?.[0];
  const memberOf = name ? groups.filter((g) => g.length >= 4 && g[3].split(',').includes(name)).map((g) => Number(g[2])) : [];
  const added = groupAdd.map((group) => {
    if (/^\d+$/.test(group)) return Number(group);
    const g = groups.find((x) => x.length >= 3 && x[0] === group);
    if (!g) throw new InvalidArgumentError(`HostConfig.GroupAdd: unable to find group ${group}: no matching entries in group file`);
    return Number(g[2]);
  });
  const additionalGids = [...new Set([...memberOf, ...added])].filter((g) => g !== gid);
  return { uid, gid, additionalGids, home: entry?.[5] || '/' };
}

/** Docker creates a working directory the image lacks (root-owned, 0755), inside the rootfs only. */
export async function ensureWorkingDir(rootfs: string, cwd: string): Promise<void> {
  try {
    const { components } = await resolveInRoot(rootfs, cwd.split('/').filter(Boolean), true);
    await ensureDirs(rootfs, components);
  } catch (err) {
    throw new InvalidArgumentError(`working directory ${cwd}: ${(err as Error).message}`);
  }
}
