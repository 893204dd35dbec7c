import { InvalidArgumentError, type MountSpec } from '../../core/plugin';

const PROPAGATIONS = new Set(['private', 'rprivate', 'shared', 'rshared', 'slave', 'rslave']);

/**
 * One HostConfig.Binds entry, `/host:/ctr[:opts]` with opts from ro, rw, z, Z, nocopy and a
 * propagation mode (Docker's default is rprivate). Named volumes are not supported yet.
 */
export function parseBind(bind: string): MountSpec {
  const parts = bind.split(':');
  if (parts.length < 2 || parts.length > 3) {
    throw new InvalidArgumentError(`invalid bind mount ${JSON.stringify(bind)}: expected /host/path:/container/path[:ro]`);
  }
  const [source, destination, opts = ''] = parts;
  if (!source.startsWith('/')) {
    throw new InvalidArgumentError(`invalid bind mount ${JSON.stringify(bind)}: the host path must be absolute (named volumes are not supported)`);
  }
  if (!destination.startsWith('/') || destination.split('/').includes('..')) {
    throw new InvalidArgumentError(`invalid bind mount ${JSON.stringify(bind)}: the container path must be absolute, without ..`);
  }
  if (destination === '/') throw new InvalidArgumentError(`invalid bind mount ${JSON.stringify(bind)}: cannot mount over /`);
  const options = ['rbind'];
  let propagation = 'rprivate';
  for (const opt of opts ? opts.split(',') : []) {
    if (opt === 'ro' || opt === 'rw') options.push(opt);
    else if (PROPAGATIONS.has(opt)) propagation = opt;
    else if (opt === 'z' || opt === 'Z' || opt === 'nocopy')
      continue; // SELinux labels / volume copy: nothing to do here
    else throw new InvalidArgumentError(`invalid bind mount ${JSON.stringify(bind)}: unknown option ${JSON.stringify(opt)}`);
  }
  options.push(propagation);
  return { destination, type: 'bind', source, options };
}
