/**
 * Volume drivers (plugin type `volume`, URI `volume.<id>`; berth ships `volume.local`).
 *
 * A driver owns where a volume's data lives and how it is made available on the host; core
 * (core/volumes) owns the records (`<root>/volumes/<name>/volume.json`: name, driver, labels,
 * options, created, anonymous), reference counting (which containers use a volume), seeding from
 * the image, and the refusal to remove a volume in use. A container's mount of a volume is a bind
 * mount of `mountpoint(name)` into the container, made by the launcher through the launch plan.
 *
 * Call order core guarantees: create -> (mount -> unmount)* -> remove. `mount` is called once per
 * starting container that uses the volume and `unmount` once when it stops; a driver that needs
 * host-side work (a device to mount) counts them. Names are validated by core
 * (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`) before a driver sees them.
 */
export interface VolumeCreateRequest {
  name: string;
  /** Driver options (`berth volume create -o key=value`); a driver refuses keys it does not know. */
  options: Record<string, string>;
}

export interface VolumeInfo {
  name: string;
  /** Absolute host path whose content the container sees (for `local`: `<root>/volumes/<name>/_data`). */
  mountpoint: string;
}

export interface VolumeDriver {
  readonly name: string;
  /** Make the volume's storage; creating an existing volume again is not an error (idempotent). */
  create(req: VolumeCreateRequest): Promise<VolumeInfo>;
  /** Delete the volume and its data. Removing a missing volume is not an error. */
  remove(name: string): Promise<void>;
  /** Where the volume's data is on the host (does not need to exist before `mount`). */
  mountpoint(name: string): string;
  /** Prepare the data for a container (optional: `local` has nothing to do); returns the path to bind. */
  mount?(name: string, containerId: string): Promise<string>;
  unmount?(name: string, containerId: string): Promise<void>;
  /** Volumes the driver has storage for (core reconciles them with its records at start). */
  list(): Promise<VolumeInfo[]>;
  /** berthd is shutting down (volumes stay). */
  close?(): Promise<void> | void;
}

export const VolumeDriver = Symbol.for('berth.VolumeDriver');
