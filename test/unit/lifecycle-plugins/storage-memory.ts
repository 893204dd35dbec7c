import { definePlugin } from '../../../core/contracts/plugin';
import { MemoryStorage } from '../../../core/testing';

export default definePlugin({ type: 'storage', id: 'memory', init: (ctx) => new MemoryStorage(ctx.stateDir) });
