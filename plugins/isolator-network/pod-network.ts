/** The CNI runner CRI pods use (core/contracts/pod-network.ts): the CNI runtime, on the CRI's bin dirs. */
import type { PodNetworkResult, PodNetworkRun, PodNetworkRunner } from '../../core/plugin';
import { CniRuntime } from './cni';

export class CniPodNetworkRunner implements PodNetworkRunner {
  add(conflist: Record<string, unknown>, run: PodNetworkRun): Promise<PodNetworkResult> {
    return new CniRuntime(run.binDirs).add(conflist, run);
  }

  del(conflist: Record<string, unknown>, run: PodNetworkRun, result?: PodNetworkResult): Promise<void> {
    return new CniRuntime(run.binDirs).del(conflist, run, result);
  }
}
