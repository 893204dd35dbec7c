"""Legacy links: hosts entry and environment from the linked container, link names, removal."""
import uuid

import docker
import pytest

from conftest import logs, wait_exit


def test_link_gives_hosts_and_env(client, run, image):
    name = f'linked-{uuid.uuid4().hex[:8]}'
    target = run(['sleep', '60'], name=name, ports=[80], environment=['SERVICE_KEY=abc'])
    ip = client.inspect_container(target)['NetworkSettings']['IPAddress']
    assert ip
    c = run(['sh', '-c', 'env; cat /etc/hosts'], host_config=client.create_host_config(links={name: 'db'}))
    assert wait_exit(client, c) == 0
    out = logs(client, c)
    me = client.inspect_container(c)['Name']
    assert client.inspect_container(c)['HostConfig']['Links'] == [f'/{name}:{me}/db']
    for line in [f'DB_PORT=tcp://{ip}:80', f'DB_PORT_80_TCP=tcp://{ip}:80', f'DB_PORT_80_TCP_ADDR={ip}', 'DB_PORT_80_TCP_PORT=80',
                 'DB_PORT_80_TCP_PROTO=tcp', f'DB_NAME={me}/db', 'DB_ENV_SERVICE_KEY=abc']:
        assert line in out.split('\n'), line
    assert f'{ip}\tdb' in out
    names = [x['Names'] for x in client.containers(all=True) if x['Id'] == target][0]
    assert f'{me}/db' in names


def test_remove_link_keeps_both_containers(client, run):
    name = f'linked-{uuid.uuid4().hex[:8]}'
    target = run(['sleep', '60'], name=name)
    c = run(['sleep', '60'], host_config=client.create_host_config(links={name: 'other'}))
    link = client.inspect_container(c)['Name'][1:] + '/other'
    client.remove_container(link, link=True)
    assert client.inspect_container(c)['HostConfig']['Links'] is None
    assert client.inspect_container(target)['State']['Running']
    assert f'/{link}' not in [x['Names'] for x in client.containers() if x['Id'] == target][0]


def test_link_to_a_missing_container_is_404(client, image):
    with pytest.raises(docker.errors.NotFound):
        client.create_container(image, 'true', host_config=client.create_host_config(links={'no-such-container': 'x'}))
