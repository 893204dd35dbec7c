/**
 * berth-only figures for `berth bench isolation`: how long each isolator phase of a container's
 * last start took in berthd (setup, plan, attach, started), in milliseconds.
 */
import type { Engine } from '../../kernel/engine';
import { type Router, sendJson } from '../router';

export function benchRoutes(router: Router, engine: Engine): void {
  router.add('GET', '/berth/containers/{id}/timings', (req, res) => {
    const rec = engine.containers.get(req.params.id);
    sendJson(res, 200, { Id: rec.Id, Timings: engine.containers.timings(rec.Id) });
  });
}
