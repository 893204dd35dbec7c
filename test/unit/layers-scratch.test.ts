import { it } from 'vitest';
import { tarOf, makeUmociImage } from '../helpers/layer-fixtures';
it('scratch', async () => {
  console.log('empty', (await tarOf([])).length);
  console.log('one', (await tarOf([{ name: 'a', content: 'x' }])).length);
  const t = Date.now();
  require('fs').rmSync('/tmp/fx', { recursive: true, force: true });
  const img = await makeUmociImage('/tmp/fx');
  console.log(Date.now() - t, img.layers);
}, 20000);
