/**
 * The public plugin API (`berth/plugin`): the contracts a plugin codes against and the helpers
 * core exports for plugins. Third-party plugins import only from here.
 */
export * from './contracts';
export * as layers from './layers';
