import { definePlugin } from '../../../core/contracts/plugin';
import { RecordingIsolator } from '../../../core/testing';
import { phases } from './phases';

export default definePlugin({ type: 'isolator', id: 'rec-b', init: () => new RecordingIsolator('rec-b', phases) });
