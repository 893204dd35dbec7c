/**
 * Pod networking for the CRI (core/cri), the Kubernetes way: core reads the CNI network
 * configuration from the CRI's conf dir and decides when to run it (ADD when a pod sandbox starts,
 * DEL when it stops); a network plugin runs the CNI binaries. The plugin offers its runner to
 * core's PodNetworks service (resolved from its context's container by the token below) at init.
 */

/** One CNI invocation for a pod: where the binaries are and the CNI_* request. */
export interface PodNetworkRun {
  /** CNI_PATH: folders holding the plugin binaries. */
  binDirs: string[];
  containerId: string;
  /** /proc/PID/ns/net; empty for a DEL after the namespace is gone. */
  netns: string;
  ifname: string;
  /** CNI_ARGS pairs (K8S_POD_NAMESPACE, K8S_POD_NAME, ...). */
  args?: Record<string, string>;
}

/** A CNI result (spec 0.4.0 / 1.0.0): the addresses are what the CRI reports. */
export interface PodNetworkResult {
  cniVersion?: string;
  interfaces?: { name: string; mac?: string; sandbox?: string }[];
  ips?: { address: string; gateway?: string; interface?: number }[];
  routes?: { dst: string; gw?: string }[];
  dns?: unknown;
}

export interface PodNetworkRunner {
  /** ADD: the list's plugins in order. */
  add(conflist: Record<string, unknown>, run: PodNetworkRun): Promise<PodNetworkResult>;
  /** DEL: in reverse order, every plugin even when one fails. */
  del(conflist: Record<string, unknown>, run: PodNetworkRun, result?: PodNetworkResult): Promise<void>;
}

export interface PodNetworks {
  offer(runner: PodNetworkRunner): void;
}

export const PodNetworks = Symbol.for('berth.PodNetworks');
