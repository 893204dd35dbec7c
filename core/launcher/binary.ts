/** Where the compiled launcher lives (built by scripts/build-launcher.js). */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

let cached: string | undefined;

/**
 * `BERTH_LAUNCHER` when set; otherwise `dist/launcher/berth-launch` of the package this file
 * belongs to (found by walking up to package.json, so it works from source and from dist).
 */
export function launcherBinary(): string {
  if (process.env.BERTH_LAUNCHER) return process.env.BERTH_LAUNCHER;
  if (cached) return cached;
  for (let dir = __dirname; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'core'))) {
      cached = join(dir, 'dist', 'launcher', 'berth-launch');
      if (!existsSync(cached)) {
        throw new Error(`launcher binary ${cached} is missing: run \`npm run build\` (needs gcc)`);
      }
      return cached;
    }
    if (dirname(dir) === dir) throw new Error('launcher binary: cannot find the berth package root');
  }
}
