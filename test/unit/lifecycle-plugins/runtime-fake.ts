import { definePlugin } from '../../../core/contracts/plugin';
import { FakeRuntime } from '../../../core/testing';

export default definePlugin({ type: 'runtime', id: 'fake', init: () => new FakeRuntime() });
