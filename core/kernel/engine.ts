/**
 * The engine: everything berthd owns, wired once. Core services are registered in the DI
 * container under their contract tokens so plugins resolve them from their child containers.
 */
import 'reflect-metadata';
import * as path from 'node:path';
import { container as rootContainer, type DependencyContainer } from 'tsyringe';
import type { Logger } from '../contracts/types';
import { BlobReader, CredentialStore } from '../contracts/services';
import type { Registry } from '../contracts/registry';
import type { StorageDriver } from '../contracts/storage';
import { ContentStore } from '../content/store';
import { ImageStore } from '../images/store';
import { ImageService } from '../images/service';
import { Puller } from '../images/pull';
import { StorageUnpacker } from '../images/layers';
import { ImageCommitter } from '../images/commit';
import { ImagePusher } from '../images/push';
import { ImageArchiver } from '../images/archive';
import { ImageImporter } from '../images/import';
import { ImageBuilder } from '../build/builder';
import { ContainerManager } from '../containers/manager';
import { EventBus } from './events';
import { ContainerStore } from '../containers/record';
import type { Isolator } from '../contracts/isolator';
import type { Runtime } from '../contracts/runtime';
import type { BerthConfig } from './config';
import { DockerConfigCredentials } from './credentials';
import { type LoadedPlugins, builtinPluginDirs, loadPlugins, resolveSlot } from './plugins';
import { IsolatorSlot, RegistrySlot, RuntimeSlot, StorageSlot, VolumeSlot } from '../contracts/slots';
import { ensureDir } from '../util/fs';
import { NetworkService } from '../contracts/network';
import { type PodNetworkRunner, PodNetworks } from '../contracts/pod-network';
import type { VolumeDriver } from '../contracts/volume';
import { NetworkManager } from '../networks/manager';
import { VolumeManager } from '../volumes/manager';

/** Where the built-in plugins live: `<package>/plugins` next to `<package>/core`. */
export const BUILTIN_PLUGINS_DIR = path.resolve(__dirname, '..', '..', 'plugins');

export const ENGINE_VERSION = '0.1.0';

export class Engine {
  readonly container: DependencyContainer;
  readonly content: ContentStore;
  readonly imageStore: ImageStore;
  readonly images: ImageService;
  readonly containers: ContainerManager;
  readonly networks: NetworkManager;
  readonly volumes: VolumeManager;
  readonly events = new EventBus();
  readonly committer: ImageCommitter;
  readonly pusher: ImagePusher;
  readonly archiver: ImageArchiver;
  readonly importer: ImageImporter;
  readonly builder: ImageBuilder;
  plugins!: LoadedPlugins;
  /** What a network plugin offered to run CRI pods' CNI configurations with (core/cri). */
  podNetworkRunner?: PodNetworkRunner;
  /** Unpacks layers into the configured storage driver; absent when no driver initialised. */
  unpacker?: StorageUnpacker;

  constructor(
    readonly config: BerthConfig,
    readonly log: Logger,
    container: DependencyContainer = rootContainer.createChildContainer(),
  ) {
    this.container = container;
    this.content = new ContentStore(config.root);
    this.imageStore = new ImageStore(config.root);
    const puller = new Puller(
      this.content,
      this.imageStore,
      () => this.registries(),
      () => this.unpacker,
    );
    this.images = new ImageService(this.content, this.imageStore, puller);
    const store = new ContainerStore(config.root);
    const nameOf = (id: string) =>
      this.containers
        .list()
        .find((c) => c.Id === id)
        ?.Name.replace(/^\//, '');
    this.networks = new NetworkManager({
      root: config.root,
      log: log.child('networks'),
      nameOf,
      hostnameOf: (id) => this.containers.list().find((c) => c.Id === id)?.Config.Hostname,
      running: (id) => {
        const rec = this.containers.list().find((c) => c.Id === id);
        return rec?.State.Running && rec.State.Pid ? { containerId: id, stateDir: store.stateDir(id), pid: rec.State.Pid } : undefined;
      },
    });
    this.volumes = new VolumeManager({ root: config.root, log: log.child('volumes'), nameOf, driver: (name) => this.volumeDriver(name) });
    this.containers = new ContainerManager({
      root: config.root,
      store,
      images: this.images,
      storage: () => this.storage(),
      runtime: () => this.runtime(),
      isolators: () => this.isolators().map((impl) => ({ uri: this.plugins.uriOf(impl)!, impl })),
      unpacker: () => this.unpacker,
      missing: (type) => this.plugins.whyMissing(type),
      log: log.child('containers'),
      networks: this.networks,
      volumes: this.volumes,
      logConfig: { Type: config.logDriver, Config: config.logOpts },
    });
    this.images.imageUsers = (id) => this.containers.usersOf(id);
    this.publishContainerEvents();
    const making = { content: this.content, images: this.images, unpacker: () => this.unpacker };
    this.committer = new ImageCommitter({ ...making, container: (ref) => this.containers.get(ref), storage: () => this.storage() });
    this.pusher = new ImagePusher(making);
    this.archiver = new ImageArchiver(making);
    this.importer = new ImageImporter({ ...making, maxLayerSize: config.maxLayerSize });
    this.builder = new ImageBuilder({ ...making, root: config.root, containers: this.containers, storage: () => this.storage(), log: log.child('build') });
    this.container.registerInstance(BlobReader, this.content);
    this.container.registerInstance(CredentialStore, new DockerConfigCredentials());
    this.container.registerInstance(NetworkService, this.networks);
    this.container.registerInstance<PodNetworks>(PodNetworks, { offer: (runner) => (this.podNetworkRunner = runner) });
  }

  async start(builtins = builtinPluginDirs(BUILTIN_PLUGINS_DIR)): Promise<void> {
    await ensureDir(this.config.root);
    await this.content.init();
    await this.imageStore.open();
    this.plugins = await loadPlugins({ config: this.config, container: this.container, log: this.log, builtins });
    await this.containers.open();
    await this.networks.open();
    await this.volumes.open();
    const storage = this.storage();
    if (storage) {
      this.unpacker = new StorageUnpacker(this.content, storage, (chain) => this.imageStore.layerSize(chain), this.config.maxLayerSize);
      this.images.onLayersReleased = async (chains) => {
        for (const c of chains) await storage.removeLayer(c);
      };
    }
    await this.containers.recover();
    // Running containers get their published ports and DNS names back; stale bridges go.
    await this.networks.recover(
      this.containers
        .list()
        .filter((c) => c.State.Running)
        .map((c) => c.Id),
    );
  }

  /** Container lifecycle events, with the attributes docker clients show and filter on. */
  private publishContainerEvents(): void {
    const attrs = (id: string, extra: Record<string, string> = {}) => {
      const rec = this.containers.list().find((c) => c.Id === id);
      return rec ? { ...(rec.Config.Labels ?? {}), image: rec.Config.Image, name: rec.Name.replace(/^\//, ''), ...extra } : extra;
    };
    const publish = (action: string) => (id: string) => this.events.publish('container', action, id, attrs(id));
    this.containers.on('create', publish('create'));
    this.containers.on('start', publish('start'));
    this.containers.on('destroy', (id: string, last?: Record<string, string>) => this.events.publish('container', 'destroy', id, last ?? {}));
    this.containers.on('exit', (id: string, exit: { exitCode: number }) => this.events.publish('container', 'die', id, attrs(id, { exitCode: String(exit.exitCode) })));
    for (const action of ['kill', 'stop', 'rename', 'pause', 'unpause', 'exec_create', 'exec_start']) this.containers.on(action, publish(action));
    this.containers.on('health_status', (id: string, status: string) => this.events.publish('container', `health_status: ${status}`, id, attrs(id)));
    this.images.onEvent = (action, id, name) => this.events.publish('image', action, id, name ? { name } : {});
  }

  // The extension points, resolved by token from what the plugin kernel registered (empty before start).
  storage(): StorageDriver | undefined {
    return resolveSlot(this.container, StorageSlot)[0];
  }

  runtime(): Runtime | undefined {
    return resolveSlot(this.container, RuntimeSlot)[0];
  }

  /** In config order. */
  isolators(): Isolator[] {
    return resolveSlot(this.container, IsolatorSlot);
  }

  /** Specific registries first, the fallback last. */
  registries(): Registry[] {
    return resolveSlot(this.container, RegistrySlot);
  }

  volumeDriver(name: string): VolumeDriver | undefined {
    return resolveSlot(this.container, VolumeSlot).find((d) => d.name === name);
  }

  async stop(): Promise<void> {
    await this.networks.close();
    await this.plugins.closeAll();
  }
}
