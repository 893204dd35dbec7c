import type { Engine } from '../../kernel/engine';
import { Router } from '../router';
import { archiveRoutes } from './archive';
import { containerRoutes } from './containers';
import { execRoutes } from './exec';
import { eventRoutes } from './events';
import { resourceRoutes } from './resources';
import { imageRoutes } from './images';
import { imageBuildRoutes } from './image-build';
import { buildRoutes } from './build';
import { systemRoutes } from './system';
import { swarmRoutes } from './swarm';
import { networkRoutes } from './networks';
import { volumeRoutes } from './volumes';
import { benchRoutes } from './bench';

export function buildRouter(engine: Engine): Router {
  const router = new Router();
  systemRoutes(router, engine);
  swarmRoutes(router);
  // Before imageRoutes: it takes POST /images/create with fromSrc and passes pulls on.
  imageBuildRoutes(router, engine);
  buildRoutes(router, engine);
  imageRoutes(router, engine);
  containerRoutes(router, engine);
  archiveRoutes(router, engine);
  execRoutes(router, engine);
  eventRoutes(router, engine);
  resourceRoutes(router, engine);
  networkRoutes(router, engine);
  volumeRoutes(router, engine);
  benchRoutes(router, engine);
  return router;
}
