/**
 * The event stream behind GET /events: container and image events in Docker's message shape,
 * kept in a bounded ring so `since` can replay recent history.
 */
import { EventEmitter } from 'node:events';

export interface EngineEvent {
  Type: 'container' | 'image' | 'network' | 'volume' | 'daemon';
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  scope: 'local';
  time: number;
  timeNano: number;
  // Pre-1.22 fields that the docker CLI still reads.
  status?: string;
  id?: string;
  from?: string;
}

const KEEP = 1024;

export class EventBus extends EventEmitter {
  private readonly recent: EngineEvent[] = [];

  constructor() {
    super();
    this.setMaxListeners(0);
  }

  publish(type: EngineEvent['Type'], action: string, id: string, attributes: Record<string, string> = {}): void {
    const nowNs = BigInt(Date.now()) * 1_000_000n + (process.hrtime.bigint() % 1_000_000n);
    const ev: EngineEvent = {
      Type: type,
      Action: action,
      Actor: { ID: id, Attributes: attributes },
      scope: 'local',
      time: Number(nowNs / 1_000_000_000n),
      timeNano: Number(nowNs),
    };
    if (type === 'container' || type === 'image') {
      ev.status = action;
      ev.id = id;
      if (attributes.image) ev.from = attributes.image;
    }
    this.recent.push(ev);
    if (this.recent.length > KEEP) this.recent.shift();
    this.emit('event', ev);
  }

  since(unixSeconds: number): EngineEvent[] {
    return this.recent.filter((e) => e.time >= unixSeconds);
  }
}

/** Docker's event filters: type, event (action), container/image (id or name), label. */
export function matchesEventFilters(ev: EngineEvent, filters: Record<string, string[]>): boolean {
  const any = (values: string[] | undefined, test: (v: string) => boolean) => !values?.length || values.some(test);
  return (
    any(filters.type, (v) => v === ev.Type) &&
    any(filters.event, (v) => v === ev.Action || ev.Action.startsWith(`${v}:`)) &&
    any(filters.container, (v) => ev.Type === 'container' && (ev.Actor.ID.startsWith(v) || ev.Actor.Attributes.name === v)) &&
    any(filters.image, (v) => ev.Actor.Attributes.image === v || (ev.Type === 'image' && (ev.Actor.ID === v || ev.Actor.Attributes.name === v))) &&
    any(filters.label, (v) => {
      const [k, val] = v.split('=');
      return ev.Actor.Attributes[k] !== undefined && (val === undefined || ev.Actor.Attributes[k] === val);
    })
  );
}
