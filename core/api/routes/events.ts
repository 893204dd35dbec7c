import type { Engine } from '../../kernel/engine';
import { type EngineEvent, matchesEventFilters } from '../../kernel/events';
import { type Router, filtersParam } from '../router';

/** GET /events: past events since `since`, then live ones until `until` or the client leaves. */
export function eventRoutes(router: Router, engine: Engine): void {
  router.add('GET', '/events', (req, res) => {
    const filters = filtersParam(req.query);
    const since = req.query.get('since');
    const until = req.query.get('until');
    const untilMs = until ? Number(until) * 1000 : undefined;
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.flushHeaders();
    const send = (ev: EngineEvent) => {
      if (matchesEventFilters(ev, filters)) res.write(JSON.stringify(ev) + '\n');
    };
    if (since) for (const ev of engine.events.since(Number(since))) if (!untilMs || ev.time * 1000 <= untilMs) send(ev);
    if (untilMs !== undefined && untilMs <= Date.now()) {
      res.end();
      return;
    }
    engine.events.on('event', send);
    const stop = () => {
      engine.events.off('event', send);
      clearTimeout(timer);
      res.end();
    };
    const timer = untilMs !== undefined ? setTimeout(stop, untilMs - Date.now()) : undefined;
    req.signal.addEventListener('abort', stop);
  });
}
