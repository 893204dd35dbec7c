/**
 * The extension points core resolves through the DI container. Each slot pairs a plugin type with
 * its injection token (the interface of the same name) and says whether config picks one
 * implementation (`storage.driver`, `runtime`) or an ordered list (`isolators` in config order;
 * registries specific before fallback; volume drivers by name). The kernel registers every
 * initialised plugin under its slot's token; core resolves them by token, never by URI.
 */
import { Isolator } from './isolator';
import { Registry } from './registry';
import { Runtime } from './runtime';
import { StorageDriver } from './storage';
import { VolumeDriver } from './volume';

export interface Slot<T> {
  readonly type: string;
  readonly token: symbol;
  readonly cardinality: 'single' | 'list';
  /** Type-only: what the token resolves to. */
  readonly _impl?: T;
}

export const StorageSlot: Slot<StorageDriver> = { type: 'storage', token: StorageDriver, cardinality: 'single' };
export const RuntimeSlot: Slot<Runtime> = { type: 'runtime', token: Runtime, cardinality: 'single' };
export const IsolatorSlot: Slot<Isolator> = { type: 'isolator', token: Isolator, cardinality: 'list' };
export const RegistrySlot: Slot<Registry> = { type: 'registry', token: Registry, cardinality: 'list' };
export const VolumeSlot: Slot<VolumeDriver> = { type: 'volume', token: VolumeDriver, cardinality: 'list' };

export const SLOTS: readonly Slot<unknown>[] = [StorageSlot, RuntimeSlot, IsolatorSlot, RegistrySlot, VolumeSlot];
