/** The `local` volume driver: a volume is a directory, `<root>/volumes/<name>/_data`. */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { InvalidArgumentError, removeTree, type VolumeCreateRequest, type VolumeDriver, type VolumeInfo } from '../../core/plugin';

export class LocalVolumeDriver implements VolumeDriver {
  readonly name = 'local';

  constructor(private readonly root: string) {}

  private dir(name: string): string {
    if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(name)) throw new InvalidArgumentError(`invalid volume name ${JSON.stringify(name)}`);
    return path.join(this.root, 'volumes', name);
  }

  mountpoint(name: string): string {
    return path.join(this.dir(name), '_data');
  }

  async create(req: VolumeCreateRequest): Promise<VolumeInfo> {
    const keys = Object.keys(req.options ?? {});
    if (keys.length) throw new InvalidArgumentError(`volume driver local: unknown option ${JSON.stringify(keys[0])} (the local driver takes none)`);
    await fs.mkdir(this.dir(req.name), { recursive: true, mode: 0o700 });
    // Containers see _data itself: it gets the usual directory mode.
    await fs.mkdir(this.mountpoint(req.name), { recursive: true, mode: 0o755 });
    return { name: req.name, mountpoint: this.mountpoint(req.name) };
  }

  async remove(name: string): Promise<void> {
    // A container may have filled the volume with a tree of any depth.
    await removeTree(this.dir(name));
  }

  async list(): Promise<VolumeInfo[]> {
    const names = await fs.readdir(path.join(this.root, 'volumes')).catch(() => [] as string[]);
    const out: VolumeInfo[] = [];
    for (const n of names) {
      if (!/^[a-zA-Z0-9]/.test(n)) continue;
      const mp = path.join(this.root, 'volumes', n, '_data');
      if (
        await fs.stat(mp).then(
          (s) => s.isDirectory(),
          () => false,
        )
      )
        out.push({ name: n, mountpoint: mp });
    }
    return out;
  }
}
