import type { Engine } from '../../kernel/engine';
import { type EngineEvent, matchesEventFilters } from '../../kernel/events';
import { type Router, filtersParam, timestampParam } from '../router';

/** GET /events: past events since `since`, then live ones until `until` or the client leaves. */
export function eventRoutes(router: Router, engine: Engine): void {
  router.add('GET', '/events', (req, res) => {
    const filters = filtersParam(req.query);
    const since = timestampParam(req.query, 'since');
    const until = timestampParam(req.query, 'until');
    const untilMs = until !== undefined ? until * 1000 : undefined;
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.flushHeaders();
    const send = (ev: EngineEvent) => {
      if (matchesEventFilters(ev, filters)) res.write(JSON.stringify(ev) + '\n');
    };
    if (since !== undefined) for (const ev of engine.events.since(since)) if (!untilMs || ev.time * 1000 <= untilMs) send(ev);
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
