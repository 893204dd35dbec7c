import type { Engine } from '../../kernel/engine';
import { Router } from '../router';
import { containerRoutes } from './containers';
import { execRoutes } from './exec';
import { eventRoutes } from './events';
import { resourceRoutes } from './resources';
import { imageRoutes } from './images';
import { imageBuildRoutes } from './image-build';
import { systemRoutes } from './system';

export function buildRouter(engine: Engine): Router {
  const router = new Router();
  systemRoutes(router, engine);
  // Before imageRoutes: it takes POST /images/create with fromSrc and passes pulls on.
  imageBuildRoutes(router, engine);
  imageRoutes(router, engine);
  containerRoutes(router, engine);
  execRoutes(router, engine);
  eventRoutes(router, engine);
  resourceRoutes(router, engine);
  return router;
}
