/**
 * The public plugin API (`berth/plugin`): the contracts a plugin codes against and the helpers
 * core exports for plugins. Built-in and third-party plugins import only from here (built-ins may
 * also import core/contracts, which this re-exports whole); test/unit/house-rules.test.ts holds
 * the built-ins to it.
 *
 * Versioning: PLUGIN_API_VERSION (core/contracts/plugin.ts) follows semver over the names exported
 * here. A manifest may declare the major it was written for (`apiVersion`); the kernel refuses a
 * plugin whose major differs.
 */

// Extension points, their tokens, shared value types, errors and definePlugin.
export * from './contracts';

// Layer tooling for storage drivers: safe changeset application, path resolution inside a root,
// OCI <-> overlay whiteouts, tree diffs, OCI layer tars, quarantine and usage walks. Also reachable
// as `layers.*` (the name API 1.0 started with).
export * from './layers';
export * as layers from './layers';

// The launcher, for runtimes: the plan format it reads, where it lives, the files its monitor
// keeps in a container's state dir, and the attach socket protocol (core/launcher/attach.ts).
export { PLAN_VERSION, RLIMITS, newLaunchPlan, serializePlan, type SerializeOptions } from './launcher/plan';
export { launcherBinary, initBinary } from './launcher/binary';
export { RUNTIME_FILE, EXIT_FILE, ATTACH_SOCKET, LOG_FILE, PLAN_FILE, readMonitorRecord, readExitRecord, processStartTime, isSameProcess, type MonitorRecord, type ExitRecord } from './launcher/state';
export { ClientFrame, MonitorFrame, FrameDecoder, readyFrame, stdinFrame, closeStdinFrame, resizeFrame, signalFrame, monitorReady, type MonitorMessage } from './launcher/attach';

// Linux process attributes isolators put in a plan: capability names and host devices.
export { CAPABILITIES, normalizeCapability, capabilityMask } from './launcher/caps';
export { hostDevices, deviceRule, type HostDevice } from './launcher/devices';

// Host calls Node lacks, behind the Syscalls interface so tests can pass their own.
export {
  type Syscalls,
  syscalls,
  errnoError,
  makedev,
  splitDev,
  MS_RDONLY,
  MS_NOSUID,
  MS_NODEV,
  MS_BIND,
  MS_REC,
  MS_PRIVATE,
  MNT_FORCE,
  MNT_DETACH,
  S_IFIFO,
  S_IFCHR,
  S_IFBLK,
  MAX_MAJOR,
  MAX_MINOR,
  LOCK_SH,
  LOCK_EX,
  LOCK_NB,
  LOCK_UN,
} from './sys/syscalls';
// Runtimes start their launcher with posix_spawn: its cost does not grow with berthd's memory.
export { spawnWithChannel, type SpawnedChild } from './sys/spawn';
// Layer stores mark their folders so ext4 spreads the trees below them (see sys/fsflags.ts).
export { markTopDir } from './sys/fsflags';

// eBPF programs (cgroup v2 device filters): the bpf(2) calls and an instruction builder.
export { type Bpf, type BpfInsn, bpf, encodeInsns, R0, R1, R2, R3, R4, R5, loadWord, and32Imm, rsh32Imm, mov32Reg, mov32Imm, jneImm, jneReg, exit } from './sys/bpf';

// Docker's seccomp profile format, checked the same way the API checks `--security-opt seccomp=`.
export {
  SECCOMP_ACTIONS,
  SECCOMP_OPERATORS,
  SECCOMP_ARCHES,
  parseSeccompProfile,
  seccompChoice,
  type SeccompAction,
  type SeccompOperator,
  type SeccompArch,
  type SeccompArg,
  type SeccompCondition,
  type SeccompRule,
  type SeccompProfile,
  type SeccompChoice,
} from './seccomp/profile';

// Unix sockets whose path is longer than sun_path allows (deep state roots).
export { connectUnix } from './util/unix-socket';
