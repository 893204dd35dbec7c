/** Where the compiled launcher lives (built by scripts/build-launcher.js). */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

const cached = new Map<string, string>();

/** `dist/launcher/NAME` of the package this file belongs to (found by walking up to package.json). */
function builtBinary(name: string): string {
  const hit = cached.get(name);
  if (hit) return hit;
  for (let dir = __dirname; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'core'))) {
      const file = join(dir, 'dist', 'launcher', name);
      if (!existsSync(file)) throw new Error(`${name} binary ${file} is missing: run \`npm run build\` (needs gcc)`);
      cached.set(name, file);
      return file;
    }
    if (dirname(dir) === dir) throw new Error(`${name} binary: cannot find the berth package root`);
  }
}

/** The launcher and monitor: `BERTH_LAUNCHER` when set, else the one this package built. */
export function launcherBinary(): string {
  return process.env.BERTH_LAUNCHER || builtBinary('berth-launch');
}

/** The minimal init `run --init` bind-mounts at /dev/init (core/launcher/init.c). */
export function initBinary(): string {
  return builtBinary('berth-init');
}

/** What holds a CRI pod sandbox's namespaces (core/cri/pause.c). */
export function pauseBinary(): string {
  return builtBinary('berth-pause');
}
