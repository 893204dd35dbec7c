import type { Readable } from 'node:stream';

/** One line of `berth diff`: Added, Changed or Deleted, like `docker diff`. */
export interface Change {
  kind: 'A' | 'C' | 'D';
  path: string;
}

export interface StorageUsage {
  /** Bytes used by each layer directory, keyed by chain ID. */
  layers: Record<string, number>;
  /** Bytes used by each container's writable layer, keyed by container id. */
  containers: Record<string, number>;
}

/**
 * A storage driver stacks read-only layers (keyed by chain ID) and gives each container a
 * writable layer on top. Layers arrive as OCI changesets (uncompressed tar streams with
 * `.wh.` whiteouts); extraction must treat them as hostile (see DESIGN.md section 4).
 */
export interface MountOptions {
  /**
   * The writable layer dies with the container (`run --rm`): nothing in it must outlive a crash,
   * so a driver may skip making it durable (overlayfs `volatile`: no syncs, a cheaper unmount).
   */
  ephemeral?: boolean;
}

export interface StorageDriver {
  /** The driver's name, e.g. `overlay`. */
  readonly name: string;
  /** Whether layers of one image can be applied at the same time (each is independent). */
  readonly parallelApply: boolean;

  /**
   * Apply a layer changeset as `chainId` on top of `parentChainId` (null for a base layer).
   * Must consume `tar` to its end and fail if the stream errors: the core makes the stream
   * error at its end when the content does not match the expected diff ID. On any failure no
   * trace of `chainId` may remain. Returns the bytes the layer occupies on disk.
   */
  applyLayer(chainId: string, parentChainId: string | null, tar: Readable): Promise<{ size: number }>;
  hasLayer(chainId: string): Promise<boolean>;
  removeLayer(chainId: string): Promise<void>;

  /** Create the container's writable layer over `topChainId` (null: empty rootfs). Idempotent. */
  create(containerId: string, topChainId: string | null): Promise<void>;
  /** Make the container's root filesystem available and return its path. Counted: pair with unmount. */
  mount(containerId: string, opts?: MountOptions): Promise<string>;
  unmount(containerId: string): Promise<void>;
  /** Remove the writable layer (unmounting first). */
  remove(containerId: string): Promise<void>;
  /** The container's changes against its image, as an OCI layer tar (whiteouts for deletions). */
  diff(containerId: string): Promise<Readable>;
  changes(containerId: string): Promise<Change[]>;
  usage(): Promise<StorageUsage>;
  /** Called at start: undo what a crash left (mounts, half-applied layers). */
  recover?(liveContainers: string[]): Promise<void>;
  /** Called at shutdown. */
  close?(): Promise<void>;
}

export const StorageDriver = Symbol.for('berth.StorageDriver');
