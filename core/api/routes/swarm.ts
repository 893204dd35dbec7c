/**
 * Swarm mode: berth does not implement it, so it answers as dockerd does on a node that is not
 * in a swarm (503 with dockerd's own messages); clients such as docker-py's test suite rely on
 * those answers (`leave_swarm(force=True)` in a tearDown must not fail with a 404).
 */
import { UnavailableError } from '../../contracts/errors';
import type { Router } from '../router';

const NOT_A_MANAGER = 'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again.';
const NOT_IN_SWARM = 'This node is not part of a swarm';
const NO_SWARM_MODE = 'berth does not implement swarm mode: this node cannot create or join a swarm';

/** Routes that exist only on a swarm manager, each with every sub-path below it. */
const MANAGER_ROUTES: [string, string][] = [
  ['GET', '/swarm'],
  ['POST', '/swarm/update'],
  ['POST', '/swarm/unlock'],
  ['GET', '/swarm/unlockkey'],
];
const MANAGER_RESOURCES = ['services', 'tasks', 'nodes', 'secrets', 'configs'];

export function swarmRoutes(router: Router): void {
  const unavailable = (message: string) => () => {
    throw new UnavailableError(message);
  };
  for (const [method, path] of MANAGER_ROUTES) router.add(method, path, unavailable(NOT_A_MANAGER));
  for (const resource of MANAGER_RESOURCES) {
    for (const method of ['GET', 'POST', 'DELETE']) {
      router.add(method, `/${resource}`, unavailable(NOT_A_MANAGER));
      router.add(method, `/${resource}/{rest*}`, unavailable(NOT_A_MANAGER));
    }
  }
  router.add('POST', '/swarm/leave', unavailable(NOT_IN_SWARM));
  router.add('POST', '/swarm/init', unavailable(NO_SWARM_MODE));
  router.add('POST', '/swarm/join', unavailable(NO_SWARM_MODE));
}
