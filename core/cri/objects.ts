/** The CRI's objects among berth's containers: sandboxes and containers, found by their labels. */
import * as path from 'node:path';
import { InvalidArgumentError, NotFoundError } from '../contracts/errors';
import type { ContainerRecord } from '../containers/record';
import type { Engine } from '../kernel/engine';
import { type CriKind, type CriView, criView } from './labels';

export interface CriObject {
  rec: ContainerRecord;
  view: CriView;
}

export class CriObjects {
  constructor(private readonly engine: Engine) {}

  all(kind: CriKind): CriObject[] {
    return this.engine.containers.list().flatMap((rec) => {
      const view = criView(rec);
      return view?.kind === kind ? [{ rec, view }] : [];
    });
  }

  /** A sandbox or container by full ID or unique prefix (crictl accepts prefixes). */
  find(kind: CriKind, id: string | undefined): CriObject | undefined {
    if (!id) throw new InvalidArgumentError(`${kind === 'sandbox' ? 'pod_sandbox_id' : 'container_id'} is required`);
    const hits = this.all(kind).filter(({ rec }) => rec.Id.startsWith(id));
    if (hits.length > 1) throw new InvalidArgumentError(`${kind} ID prefix ${id} is ambiguous`);
    return hits[0];
  }

  get(kind: CriKind, id: string | undefined): CriObject {
    const hit = this.find(kind, id);
    if (!hit) throw new NotFoundError(`${kind === 'sandbox' ? 'pod sandbox' : 'container'} ${id} not found`);
    return hit;
  }

  /** The containers of one pod. */
  members(sandboxId: string): CriObject[] {
    return this.all('container').filter((c) => c.view.sandboxId === sandboxId);
  }

  /** A record's state dir (where CRI keeps its per-object files). */
  stateDir(id: string): string {
    return path.join(this.engine.config.root, 'containers', id);
  }
}
