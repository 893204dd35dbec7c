/**
 * Type checks for Docker-shaped JSON request bodies, done before anything acts on them. Go's
 * decoder in dockerd refuses a value of the wrong type with a 400; berth does the same, naming
 * the field (`Config.Cmd: expected an array of strings or a string, got number`). `null` is
 * accepted wherever Go accepts it (every field), and fields berth does not know are ignored, as
 * Go ignores them. Docker's StrSlice fields (Cmd, Entrypoint, Shell) also take a single string;
 * it is normalised to a one-element array here.
 */
import { InvalidArgumentError } from '../contracts/errors';
import { seccompChoice } from '../seccomp/profile';

export type Shape = 'string' | 'bool' | 'int' | 'number' | 'strslice' | 'object' | 'any' | { array: Shape } | { map: Shape } | { fields: Record<string, Shape> };

const strings: Shape = { array: 'string' };
const stringMap: Shape = { map: 'string' };
const emptyObjectMap: Shape = { map: 'object' };

const WEIGHT_DEVICE: Shape = { array: { fields: { Path: 'string', Weight: 'int' } } };
const THROTTLE_DEVICE: Shape = { array: { fields: { Path: 'string', Rate: 'int' } } };

/** Docker's container.Config. */
export const CONTAINER_CONFIG: Record<string, Shape> = {
  Hostname: 'string',
  Domainname: 'string',
  User: 'string',
  AttachStdin: 'bool',
  AttachStdout: 'bool',
  AttachStderr: 'bool',
  ExposedPorts: emptyObjectMap,
  Tty: 'bool',
  OpenStdin: 'bool',
  StdinOnce: 'bool',
  Env: strings,
  Cmd: 'strslice',
  Healthcheck: { fields: { Test: strings, Interval: 'int', Timeout: 'int', StartPeriod: 'int', StartInterval: 'int', Retries: 'int' } },
  ArgsEscaped: 'bool',
  Image: 'string',
  Volumes: emptyObjectMap,
  WorkingDir: 'string',
  Entrypoint: 'strslice',
  NetworkDisabled: 'bool',
  MacAddress: 'string',
  OnBuild: strings,
  Labels: stringMap,
  StopSignal: 'string',
  StopTimeout: 'int',
  Shell: 'strslice',
};

/** Docker's container.HostConfig (with its embedded Resources). */
export const HOST_CONFIG: Record<string, Shape> = {
  Binds: strings,
  ContainerIDFile: 'string',
  LogConfig: { fields: { Type: 'string', Config: stringMap } },
  NetworkMode: 'string',
  PortBindings: { map: { array: { fields: { HostIp: 'string', HostPort: 'string' } } } },
  RestartPolicy: { fields: { Name: 'string', MaximumRetryCount: 'int' } },
  AutoRemove: 'bool',
  VolumeDriver: 'string',
  VolumesFrom: strings,
  ConsoleSize: { array: 'int' },
  Annotations: stringMap,
  CapAdd: 'strslice',
  CapDrop: 'strslice',
  CgroupnsMode: 'string',
  Dns: strings,
  DnsOptions: strings,
  DnsSearch: strings,
  ExtraHosts: strings,
  GroupAdd: strings,
  IpcMode: 'string',
  Cgroup: 'string',
  Links: strings,
  OomScoreAdj: 'int',
  PidMode: 'string',
  Privileged: 'bool',
  PublishAllPorts: 'bool',
  ReadonlyRootfs: 'bool',
  SecurityOpt: strings,
  StorageOpt: stringMap,
  Tmpfs: stringMap,
  UTSMode: 'string',
  UsernsMode: 'string',
  ShmSize: 'int',
  Sysctls: stringMap,
  Runtime: 'string',
  Isolation: 'string',
  MaskedPaths: strings,
  ReadonlyPaths: strings,
  Init: 'bool',
  Mounts: {
    array: {
      fields: {
        Type: 'string',
        Source: 'string',
        Target: 'string',
        ReadOnly: 'bool',
        Consistency: 'string',
        BindOptions: { fields: { Propagation: 'string', NonRecursive: 'bool', CreateMountpoint: 'bool' } },
        VolumeOptions: { fields: { NoCopy: 'bool', Labels: stringMap, DriverConfig: { fields: { Name: 'string', Options: stringMap } } } },
        TmpfsOptions: { fields: { SizeBytes: 'int', Mode: 'int' } },
      },
    },
  },
  // Resources
  CpuShares: 'int',
  Memory: 'int',
  NanoCpus: 'int',
  CgroupParent: 'string',
  BlkioWeight: 'int',
  BlkioWeightDevice: WEIGHT_DEVICE,
  BlkioDeviceReadBps: THROTTLE_DEVICE,
  BlkioDeviceWriteBps: THROTTLE_DEVICE,
  BlkioDeviceReadIOps: THROTTLE_DEVICE,
  BlkioDeviceWriteIOps: THROTTLE_DEVICE,
  CpuPeriod: 'int',
  CpuQuota: 'int',
  CpuRealtimePeriod: 'int',
  CpuRealtimeRuntime: 'int',
  CpusetCpus: 'string',
  CpusetMems: 'string',
  Devices: { array: { fields: { PathOnHost: 'string', PathInContainer: 'string', CgroupPermissions: 'string' } } },
  DeviceCgroupRules: strings,
  DeviceRequests: { array: { fields: { Driver: 'string', Count: 'int', DeviceIDs: strings, Capabilities: { array: strings }, Options: stringMap } } },
  KernelMemory: 'int',
  KernelMemoryTCP: 'int',
  MemoryReservation: 'int',
  MemorySwap: 'int',
  MemorySwappiness: 'int',
  OomKillDisable: 'bool',
  PidsLimit: 'int',
  Ulimits: { array: { fields: { Name: 'string', Hard: 'int', Soft: 'int' } } },
  CpuCount: 'int',
  CpuPercent: 'int',
  IOMaximumIOps: 'int',
  IOMaximumBandwidth: 'int',
};

/** POST /containers/create: container.Config plus HostConfig and NetworkingConfig. */
export const CREATE_BODY: Shape = {
  fields: {
    ...CONTAINER_CONFIG,
    HostConfig: { fields: HOST_CONFIG },
    NetworkingConfig: { fields: { EndpointsConfig: { map: 'object' } } },
  },
};

/** POST /containers/{id}/exec */
export const EXEC_CONFIG: Shape = {
  fields: {
    User: 'string',
    Privileged: 'bool',
    Tty: 'bool',
    ConsoleSize: { array: 'int' },
    AttachStdin: 'bool',
    AttachStderr: 'bool',
    AttachStdout: 'bool',
    Detach: 'bool',
    DetachKeys: 'string',
    Env: strings,
    WorkingDir: 'string',
    Cmd: 'strslice',
  },
};

/** POST /exec/{id}/start */
export const EXEC_START: Shape = { fields: { Detach: 'bool', Tty: 'bool', ConsoleSize: { array: 'int' } } };

/** POST /containers/{id}/update: Resources plus RestartPolicy. */
export const UPDATE_BODY: Shape = {
  fields: Object.fromEntries(Object.entries(HOST_CONFIG).filter(([k]) => k === 'RestartPolicy' || k in RESOURCE_KEYS())),
};

function RESOURCE_KEYS(): Record<string, true> {
  const keys = Object.keys(HOST_CONFIG);
  return Object.fromEntries(keys.slice(keys.indexOf('CpuShares')).map((k) => [k, true]));
}

/** POST /commit: a container.Config (may be null or empty). */
export const COMMIT_CONFIG: Shape = { fields: CONTAINER_CONFIG };

/** POST /auth */
export const AUTH_CONFIG: Shape = {
  fields: { username: 'string', password: 'string', auth: 'string', email: 'string', serveraddress: 'string', identitytoken: 'string', registrytoken: 'string' },
};

function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

function describe(shape: Shape): string {
  if (typeof shape === 'string') {
    return {
      string: 'a string',
      bool: 'a boolean',
      int: 'an integer',
      number: 'a number',
      strslice: 'an array of strings or a string',
      object: 'an object',
      any: 'any value',
    }[shape];
  }
  if ('array' in shape) return `an array of ${describe(shape.array).replace(/^an? /, '')}s`;
  if ('map' in shape) return 'an object';
  return 'an object';
}

function fail(where: string, shape: Shape, value: unknown): never {
  let shown = '';
  if (typeof value === 'number' || typeof value === 'boolean') shown = ` (${value})`;
  else if (typeof value === 'string') shown = ` (${JSON.stringify(value.length > 40 ? value.slice(0, 40) + '...' : value)})`;
  throw new InvalidArgumentError(`${where}: expected ${describe(shape)}, got ${kindOf(value)}${shown}`);
}

/**
 * Checks `value` against `shape` (throwing a 400 that names the field) and returns it with
 * StrSlice strings turned into arrays. `where` names the value in messages (e.g. `Config`).
 */
export function checkShape<T = unknown>(value: unknown, shape: Shape, where: string): T {
  if (value === null || value === undefined) return value as T;
  if (typeof shape === 'string') {
    switch (shape) {
      case 'any':
        return value as T;
      case 'string':
        if (typeof value !== 'string') fail(where, shape, value);
        return value as T;
      case 'bool':
        if (typeof value !== 'boolean') fail(where, shape, value);
        return value as T;
      case 'int':
        if (typeof value !== 'number' || !Number.isSafeInteger(value)) fail(where, shape, value);
        return value as T;
      case 'number':
        if (typeof value !== 'number' || !Number.isFinite(value)) fail(where, shape, value);
        return value as T;
      case 'object':
        if (kindOf(value) !== 'object') fail(where, shape, value);
        return value as T;
      case 'strslice':
        if (typeof value === 'string') return [value] as T;
        if (!Array.isArray(value)) fail(where, shape, value);
        value.forEach((v, i) => {
          if (typeof v !== 'string') fail(`${where}[${i}]`, 'string', v);
        });
        return value as T;
    }
  }
  if ('array' in shape) {
    if (!Array.isArray(value)) fail(where, shape, value);
    return value.map((v, i) => {
      // Go would decode a null item as a zero value; no client sends one, and code further on
      // reads items as what they claim to be, so null items are refused.
      if (v === null && shape.array !== 'object' && shape.array !== 'any') fail(`${where}[${i}]`, shape.array, v);
      return checkShape(v, shape.array, `${where}[${i}]`);
    }) as T;
  }
  if (kindOf(value) !== 'object') fail(where, shape, value);
  const obj = value as Record<string, unknown>;
  if ('map' in shape) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(obj)) {
      if (v === null && shape.map !== 'object' && shape.map !== 'any') fail(`${where}[${JSON.stringify(k)}]`, shape.map, v);
      out[k] = checkShape(v, shape.map, `${where}[${JSON.stringify(k)}]`);
    }
    return out as T;
  }
  const out: Record<string, unknown> = { ...obj };
  for (const [k, fieldShape] of Object.entries(shape.fields)) {
    // Go matches JSON keys to fields case-insensitively (docker-py sends `detachKeys`); berth
    // reads the canonical spelling, so a differently-cased key is checked and renamed to it.
    const key = k in obj ? k : Object.keys(obj).find((o) => o.toLowerCase() === k.toLowerCase());
    if (key === undefined) continue;
    if (key !== k) delete out[key];
    out[k] = checkShape(obj[key], fieldShape, where ? `${where}.${k}` : k);
  }
  return out as T;
}

/** A JSON body that must be an object (or absent): anything else is a 400 naming the request. */
export function checkBody<T>(body: unknown, shape: Shape, what: string): T | undefined {
  if (body === undefined || body === null) return undefined;
  if (kindOf(body) !== 'object') throw new InvalidArgumentError(`${what}: the request body must be a JSON object, got ${kindOf(body)}`);
  try {
    return checkShape<T>(body, shape, '');
  } catch (err) {
    throw new InvalidArgumentError(`invalid ${what}: ${(err as Error).message}`);
  }
}

/**
 * `HostConfig.SecurityOpt`, checked as dockerd's parseSecurityOpt does: `seccomp=` must be
 * unconfined, builtin or a valid profile (a 400 naming the profile's key otherwise);
 * `no-new-privileges[=true|false]` is applied by the namespaces isolator. berth loads no AppArmor
 * or SELinux profile, so only their opt-outs (`apparmor=unconfined`, `label=disable`) are
 * accepted; anything else is refused, naming it. Older clients write `key:value`.
 */
export function checkSecurityOpt(securityOpt: unknown): void {
  if (!Array.isArray(securityOpt)) return;
  for (const opt of securityOpt as string[]) {
    const [key, value] = opt.split(/[=:]/, 2);
    if ((key === 'label' && value === 'disable') || (key === 'apparmor' && value === 'unconfined')) continue;
    if (key === 'no-new-privileges' && (value === undefined || value === 'true' || value === 'false')) continue;
    if (key !== 'seccomp' || opt === key) {
      throw new InvalidArgumentError(
        `invalid --security-opt ${JSON.stringify(opt.length > 60 ? opt.slice(0, 60) + '...' : opt)} (HostConfig.SecurityOpt): berth applies seccomp=unconfined|builtin|<profile JSON>, no-new-privileges, apparmor=unconfined and label=disable`,
      );
    }
  }
  seccompChoice(securityOpt);
}
