import { definePlugin, type VolumeDriver } from '../../core/plugin';
import { LocalVolumeDriver } from './driver';

/** `volume.local`: named and anonymous volumes as directories under `<root>/volumes`. */
export default definePlugin<Record<string, never>, VolumeDriver>({
  type: 'volume',
  id: 'local',
  init(ctx) {
    return new LocalVolumeDriver(ctx.root);
  },
});
