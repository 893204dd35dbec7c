/** Volumes in the Docker Engine API's shapes: /volumes, create, inspect, rm, prune. */
import type { Engine } from '../../kernel/engine';
import { type Router, boolParam, filtersParam, readJsonBody, sendJson } from '../router';
import { compareVersions } from '../server';

export function volumeRoutes(router: Router, engine: Engine): void {
  const volumes = engine.volumes;

  router.add('GET', '/volumes', (req, res) => {
    const filters = filtersParam(req.query);
    let list = volumes.list();
    if (filters.name) list = list.filter((v) => filters.name.some((f) => v.Name.includes(f)));
    if (filters.dangling) {
      const want = filters.dangling.includes('true') || filters.dangling.includes('1');
      list = list.filter((v) => (volumes.usersOf(v.Name).length === 0) === want);
    }
    sendJson(res, 200, { Volumes: list.map((v) => volumes.view(v)), Warnings: [] });
  });

  router.add('GET', '/volumes/{name}', (req, res) => {
    sendJson(res, 200, volumes.view(volumes.get(req.params.name)));
  });

  router.add('POST', '/volumes/create', async (req, res) => {
    const body = (await readJsonBody<Parameters<typeof volumes.create>[0]>(req)) ?? {};
    const rec = await volumes.create(body);
    engine.events.publish('volume', 'create', rec.Name, { driver: rec.Driver });
    sendJson(res, 201, volumes.view(rec));
  });

  router.add('DELETE', '/volumes/{name}', async (req, res) => {
    await volumes.remove(req.params.name, { force: boolParam(req.query, 'force') });
    engine.events.publish('volume', 'destroy', req.params.name, {});
    res.writeHead(204).end();
  });

  router.add('POST', '/volumes/prune', async (req, res) => {
    const filters = filtersParam(req.query);
    // API 1.42 made prune remove only anonymous volumes unless all=true; older clients get every unused one.
    const all = (filters.all ?? []).some((v) => v === 'true' || v === '1') || compareVersions(req.version, '1.42') < 0;
    sendJson(res, 200, await volumes.prune(all));
  });
}
