/** Networks in the Docker Engine API's shapes: /networks, create, inspect, rm, connect, disconnect, prune. */
import type { Engine } from '../../kernel/engine';
import type { EndpointRequest } from '../../networks/manager';
import { type Router, filtersParam, readJsonBody, sendJson } from '../router';

export function networkRoutes(router: Router, engine: Engine): void {
  const networks = engine.networks;
  const containerId = (ref: string) => engine.containers.get(ref).Id;
  /** Docker lists host and none too: they are modes, not records. */
  const pseudo = (name: 'host' | 'none') => ({
    Name: name,
    Id: name.padEnd(64, '0'),
    Created: '0001-01-01T00:00:00Z',
    Scope: 'local',
    Driver: name === 'none' ? 'null' : 'host',
    EnableIPv6: false,
    IPAM: { Driver: 'default', Options: null, Config: [] },
    Internal: false,
    Attachable: false,
    Ingress: false,
    ConfigFrom: { Network: '' },
    ConfigOnly: false,
    Containers: {},
    Options: {},
    Labels: {},
  });

  router.add('GET', '/networks', (req, res) => {
    const filters = filtersParam(req.query);
    let list = [...networks.list().map((n) => networks.inspect(n.Id)), pseudo('host'), pseudo('none')];
    if (filters.name) list = list.filter((n) => filters.name.some((f) => n.Name.includes(f)));
    if (filters.id) list = list.filter((n) => filters.id.some((f) => n.Id.startsWith(f)));
    if (filters.driver) list = list.filter((n) => filters.driver.includes(n.Driver));
    sendJson(res, 200, list);
  });

  router.add('GET', '/networks/{id}', (req, res) => {
    const id = req.params.id;
    sendJson(res, 200, id === 'host' || id === 'none' ? pseudo(id) : networks.inspect(id));
  });

  router.add('POST', '/networks/create', async (req, res) => {
    const body = (await readJsonBody<Parameters<typeof networks.create>[0]>(req)) ?? {};
    const out = await networks.create(body);
    engine.events.publish('network', 'create', out.Id, { name: body.Name ?? '', type: 'bridge' });
    sendJson(res, 201, out);
  });

  router.add('DELETE', '/networks/{id}', async (req, res) => {
    const rec = networks.get(req.params.id);
    await networks.remove(rec.Id);
    engine.events.publish('network', 'destroy', rec.Id, { name: rec.Name, type: 'bridge' });
    res.writeHead(204).end();
  });

  router.add('POST', '/networks/{id}/connect', async (req, res) => {
    const body = (await readJsonBody<{ Container?: string; EndpointConfig?: EndpointRequest | null }>(req)) ?? {};
    const net = networks.get(req.params.id);
    const id = containerId(body.Container ?? '');
    await networks.connect(net.Id, id, body.EndpointConfig ?? {});
    engine.events.publish('network', 'connect', net.Id, { container: id, name: net.Name, type: 'bridge' });
    res.writeHead(200).end();
  });

  router.add('POST', '/networks/{id}/disconnect', async (req, res) => {
    // Force only matters to dockerd for endpoints of containers that are gone; berth has none such.
    const body = (await readJsonBody<{ Container?: string; Force?: boolean }>(req)) ?? {};
    const net = networks.get(req.params.id);
    const id = containerId(body.Container ?? '');
    await networks.disconnect(net.Id, id);
    engine.events.publish('network', 'disconnect', net.Id, { container: id, name: net.Name, type: 'bridge' });
    res.writeHead(200).end();
  });

  router.add('POST', '/networks/prune', async (_req, res) => {
    const deleted: string[] = [];
    for (const n of networks.list()) {
      if (n.Name === 'bridge') continue;
      try {
        await networks.remove(n.Id);
        deleted.push(n.Name);
      } catch {
        // in use: kept
      }
    }
    sendJson(res, 200, { NetworksDeleted: deleted });
  });
}
