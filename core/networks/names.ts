/**
 * Container names on user-defined networks: one DNS responder (dns.ts) per network on its
 * gateway address, answering with the addresses of the containers known by a name there.
 */
import { DnsResponder } from './dns';
import type { ContainerNet } from './records';
import type { NetworkStore } from './store';

export class NetworkDns {
  private readonly responders = new Map<string, DnsResponder>();

  constructor(
    private readonly store: NetworkStore,
    private readonly nameOf: (id: string) => string | undefined,
  ) {}

  /** The network's responder, started on first use. */
  async up(network: string): Promise<void> {
    if (this.responders.has(network)) return;
    const net = this.store.byName(network);
    if (!net) return;
    const responder = new DnsResponder(net.Gateway, (name, from) => this.lookup(network, name, from));
    await responder.start();
    this.responders.set(network, responder);
  }

  async stop(network: string): Promise<void> {
    await this.responders.get(network)?.stop();
    this.responders.delete(network);
  }

  async close(): Promise<void> {
    for (const d of this.responders.values()) await d.stop().catch(() => undefined);
    this.responders.clear();
  }

  /**
   * Addresses of the containers on `network` known as `name` (name, alias or short id, also as
   * `name.network`), or as a link alias of the asking container (`from`: its address).
   */
  private lookup(network: string, name: string, from?: string): string[] | undefined {
    const suffix = `.${network.toLowerCase()}`;
    const wanted = name.endsWith(suffix) ? name.slice(0, -suffix.length) : name;
    const onNetwork = this.store.allContainers().filter((c) => c.Endpoints?.some((e) => e.network === network));
    const addressOf = (c: ContainerNet) => c.Endpoints!.find((e) => e.network === network)!.address.split('/')[0];
    const asker = from ? onNetwork.find((c) => addressOf(c) === from) : undefined;
    const link = asker?.Networks[network]?.Links?.find((l) => l.split(':')[1].toLowerCase() === wanted);
    const target = link ? link.split(':')[0].toLowerCase() : wanted;
    const ips: string[] = [];
    for (const c of onNetwork) {
      const names = [this.nameOf(c.Id), c.Id.slice(0, 12), ...(c.Networks[network]?.Aliases ?? [])].filter(Boolean).map((n) => n!.toLowerCase());
      if (names.includes(target)) ips.push(addressOf(c));
    }
    return ips.length ? ips : undefined;
  }
}
