import type { Engine } from '../../kernel/engine';
import { Router } from '../router';
import { containerRoutes } from './containers';
import { execRoutes } from './exec';
import { imageRoutes } from './images';
import { systemRoutes } from './system';

export function buildRouter(engine: Engine): Router {
  const router = new Router();
  systemRoutes(router, engine);
  imageRoutes(router, engine);
  containerRoutes(router, engine);
  execRoutes(router, engine);
  return router;
}
