import { it } from 'vitest';
import fs from 'node:fs';
import { tarOf, streamOf } from '../helpers/layer-fixtures';
import { applyLayerTar } from '../../core/layers';
it('scratch', async () => {
  fs.rmSync('/tmp/ap', { recursive: true, force: true }); fs.mkdirSync('/tmp/ap');
  const t = await tarOf([{ name: 'd/', type: 'directory' }, { name: 'd/f', content: 'hello' }, { name: 'e' }]);
  console.log(await applyLayerTar('/tmp/ap', streamOf(t), { whiteouts: 'merge' }));
  console.log(fs.readdirSync('/tmp/ap', { recursive: true }));
}, 5000);
