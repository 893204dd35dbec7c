"""
What docker-py 7.1's own integration suite (tests/integration) expects of the daemon, where
berthd once differed from dockerd 20.10: each test here names the docker-py test it stands for.
"""
import gzip
import io
import os
import socket
import subprocess
import tarfile
import tempfile

import docker
import pytest

from conftest import logs, wait_exit


def test_attach_with_logs_and_no_stream_replays_the_output(client, run):
    # AttachContainerTest.test_attach_no_stream: it hung until the client's timeout. Sent right
    # behind the 101, the replay was also lost now and then (1 in 20) in docker-py's header read.
    for _ in range(10):
        c = run(['sh', '-c', 'echo hello; echo oops >&2'])
        wait_exit(client, c)
        assert client.attach(c, stream=False, logs=True, stderr=False) == b'hello\n'
        assert sorted(client.attach(c, stream=False, logs=True).split()) == [b'hello', b'oops']


def test_config_volumes_of_the_request_become_anonymous_volumes(client, run):
    # ArchiveTest.*: create_container(volumes=['/vol1']) sends Config.Volumes only.
    c = run(['sh', '-c', 'echo data > /vol1/f'], volumes=['/vol1'])
    assert wait_exit(client, c) == 0
    info = client.inspect_container(c)
    mounts = [m for m in info['Mounts'] if m['Destination'] == '/vol1']
    assert len(mounts) == 1 and mounts[0]['Type'] == 'volume'
    assert '/vol1' in info['Config']['Volumes']
    stream, stat = client.get_archive(c, '/vol1/f')
    assert stat['name'] == 'f'
    with tarfile.open(fileobj=io.BytesIO(b''.join(stream))) as tar:
        assert tar.extractfile('f').read() == b'data\n'
    volume = mounts[0]['Name']
    client.remove_container(c, v=True)
    assert volume not in [v['Name'] for v in client.volumes()['Volumes'] or []]


def test_volumes_from_shares_volumes_and_binds_with_their_modes(client, run, image):
    # CreateContainerTest.test_create_container_with_volumes_from
    with tempfile.TemporaryDirectory() as host_dir:
        source = run(['sh', '-c', 'echo shared > /data/f'], volumes=['/data'],
                     host_config=client.create_host_config(binds={host_dir: {'bind': '/host', 'mode': 'ro'}}))
        assert wait_exit(client, source) == 0
        name = client.inspect_container(source)['Name'].lstrip('/')
        reader = run(['sh', '-c', 'cat /data/f; touch /host/x 2>/dev/null || echo host-ro; touch /data/g && echo data-rw'],
                     host_config=client.create_host_config(volumes_from=[name]))
        assert wait_exit(client, reader) == 0
        assert logs(client, reader).split() == ['shared', 'host-ro', 'data-rw']
        assert client.inspect_container(reader)['HostConfig']['VolumesFrom'] == [name]
        ro = run(['touch', '/data/h'], host_config=client.create_host_config(volumes_from=[f'{name}:ro']))
        assert wait_exit(client, ro) != 0
        assert 'Read-only file system' in logs(client, ro)
    with pytest.raises(docker.errors.NotFound):
        client.create_container(image, 'true', host_config=client.create_host_config(volumes_from=['no-such-container']))


def test_bind_propagation_is_reported(client, run):
    # VolumeBindTest.test_create_with_binds_rw_rshared: dockerd refuses an rshared bind whose
    # source is not on a shared mount, with this message; on a shared one it runs and reports it.
    with tempfile.TemporaryDirectory() as host_dir:
        with pytest.raises(docker.errors.APIError, match=f'path {host_dir} is mounted on .* but it is not a shared mount'):
            run(['true'], host_config=client.create_host_config(binds={host_dir: {'bind': '/mnt', 'mode': 'rw,rshared'}}))
        subprocess.run(['mount', '--bind', host_dir, host_dir], check=True)
        try:
            subprocess.run(['mount', '--make-shared', host_dir], check=True)
            c = run(['true'], host_config=client.create_host_config(binds={host_dir: {'bind': '/mnt', 'mode': 'rw,rshared'}}))
            assert wait_exit(client, c) == 0
            mount = [m for m in client.inspect_container(c)['Mounts'] if m['Destination'] == '/mnt'][0]
            assert (mount['Source'], mount['RW'], mount['Propagation']) == (host_dir, True, 'rshared')
        finally:
            subprocess.run(['umount', '--recursive', host_dir], check=True)


def test_uts_mode_host_shares_the_hostname_and_never_sets_it(client, run):
    # CreateContainerTest.test_create_with_uts_mode
    before = socket.gethostname()
    c = run(['sh', '-c', 'hostname; cat /etc/hostname'], host_config=client.create_host_config(uts_mode='host'))
    assert wait_exit(client, c) == 0
    assert logs(client, c).split() == [before, before]
    assert client.inspect_container(c)['HostConfig']['UTSMode'] == 'host'
    assert socket.gethostname() == before
    own = run(['hostname'])
    wait_exit(client, own)
    assert logs(client, own).strip() == own[:12]


def _memory_cgroup_dir(pid):
    with open(f'/proc/{pid}/cgroup') as f:
        for line in f:
            _, controllers, path = line.rstrip('\n').split(':', 2)
            if 'memory' in controllers.split(','):
                return f'/sys/fs/cgroup/memory{path}'
    return None


def test_memory_swappiness_is_written_to_the_cgroup(client, run):
    # CreateContainerTest.test_create_with_memory_constraints_with_int
    if _memory_cgroup_dir(os.getpid()) is None:
        # cgroup v2 has no per-cgroup swappiness: the start is refused, naming the field.
        with pytest.raises(docker.errors.APIError) as e:
            run(['true'], host_config=client.create_host_config(mem_swappiness=40))
        assert 'MemorySwappiness' in e.value.explanation
        return
    c = run(['sleep', '60'], host_config=client.create_host_config(mem_swappiness=40))
    info = client.inspect_container(c)
    assert info['HostConfig']['MemorySwappiness'] == 40
    with open(os.path.join(_memory_cgroup_dir(info['State']['Pid']), 'memory.swappiness')) as f:
        assert f.read().strip() == '40'
    with pytest.raises(docker.errors.APIError) as e:
        run(['true'], host_config=client.create_host_config(mem_swappiness=101))
    assert e.value.response.status_code == 400 and 'swappiness' in e.value.explanation


def test_runtime_given_beside_the_config_is_taken(client, image, containers):
    # ContainerCPUTest.test_create_with_runtime: create_container(runtime=) puts it outside HostConfig.
    c = client.create_container(image, 'true', runtime='runc')['Id']
    containers.append(c)
    assert client.inspect_container(c)['HostConfig']['Runtime'] == 'runc'
    assert 'Runtime' not in client.inspect_container(c)['Config']
    with pytest.raises(docker.errors.APIError) as e:
        containers.append(client.create_container(image, 'true', runtime='no-such-runtime')['Id'])
    assert e.value.response.status_code == 400


def test_log_driver_checks_as_dockerd(client, run, image):
    # CreateContainerTest.test_valid_log_driver_and_log_opt / test_invalid_log_driver_raises_exception
    c = run(['true'], host_config=client.create_host_config(log_config=docker.types.LogConfig(type='json-file', config={'max-file': '100'})))
    assert client.inspect_container(c)['HostConfig']['LogConfig'] == {'Type': 'json-file', 'Config': {'max-file': '100'}}
    with pytest.raises(docker.errors.APIError) as e:
        client.create_container(image, 'true', host_config=client.create_host_config(log_config=docker.types.LogConfig(type='asdf')))
    assert e.value.explanation == "logger: no log driver named 'asdf' is registered"


def test_volume_driver_is_kept_and_used_for_the_containers_volumes(client, run, image, containers):
    # models ContainerTest.test_create_with_volume_driver
    c = run(['true'], start=False, host_config=client.create_host_config(volume_driver='foo'))
    assert client.inspect_container(c)['HostConfig']['VolumeDriver'] == 'foo'
    # A container with a volume needs the driver to exist.
    with pytest.raises(docker.errors.NotFound) as e:
        containers.append(client.create_container(image, 'true', volumes=['/v'], host_config=client.create_host_config(volume_driver='foo'))['Id'])
    assert 'foo' in e.value.explanation
    local = run(['true'], start=False, volumes=['/v'], host_config=client.create_host_config(volume_driver='local'))
    assert [m['Driver'] for m in client.inspect_container(local)['Mounts']] == ['local']


def test_build_runs_on_the_network_it_is_given(client, run, image):
    # BuildTest.test_build_with_network_mode: RUN reaches a container by its alias on that network.
    network = client.create_network('berth-docker-py-buildnet')['Id']
    tags = []
    try:
        target = run(['sleep', '60'])
        client.connect_container_to_network(target, network, aliases=['pingtarget.docker'])

        def build(mode, tag):
            tags.append(tag)
            dockerfile = f'FROM {image}\nRUN busybox ping -c1 -W5 pingtarget.docker\n'.encode()
            return list(client.build(fileobj=io.BytesIO(dockerfile), network_mode=mode, tag=tag, nocache=True, rm=True, forcerm=True, decode=True))

        out = build(network, 'berth-docker-py-netbuild:latest')
        assert client.inspect_image('berth-docker-py-netbuild:latest'), out
        out = build('none', 'berth-docker-py-nonebuild:latest')
        assert out[-1]['errorDetail']['code'] == 1
        with pytest.raises(docker.errors.NotFound):
            client.inspect_image('berth-docker-py-nonebuild:latest')
    finally:
        for t in tags:
            try:
                client.remove_image(t, force=True)
            except docker.errors.NotFound:
                pass
        client.remove_container(target, force=True)
        client.remove_network(network)


def test_ipv6_pool_without_enable_ipv6_is_kept_and_hands_out_no_address(client, run, image):
    # TestNetworks.test_create_with_ipv6_address / test_connect_with_ipv6_address, as dockerd 20.10 answers.
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet='fd00:2a1::/64')])
    name = 'berth-docker-py-v6pool'
    client.create_network(name, ipam=ipam)
    try:
        net = client.inspect_network(name)
        assert net['EnableIPv6'] is False
        subnets = [p['Subnet'] for p in net['IPAM']['Config']]
        assert len(subnets) == 2 and ':' not in subnets[0] and subnets[1] == 'fd00:2a1::/64'
        c = run(['sh', '-c', 'cat /proc/net/if_inet6'], host_config=client.create_host_config(network_mode=name),
                networking_config=client.create_networking_config({name: client.create_endpoint_config(ipv6_address='fd00:2a1::f00d')}))
        assert wait_exit(client, c) == 0
        ep = client.inspect_container(c)['NetworkSettings']['Networks'][name]
        assert ep['IPAMConfig']['IPv6Address'] == 'fd00:2a1::f00d'
        assert ep['GlobalIPv6Address'] == '' and 'fd002a1' not in logs(client, c)
        with pytest.raises(docker.errors.APIError) as e:
            client.create_container(image, 'true', host_config=client.create_host_config(network_mode=name),
                                    networking_config=client.create_networking_config({name: client.create_endpoint_config(ipv6_address='fd00:2a2::1')}))
        assert e.value.response.status_code == 400
        client.remove_container(c, force=True)
    finally:
        client.remove_network(name)


def _push_blob(registry, repo, data):
    import hashlib
    import urllib.request
    digest = 'sha256:' + hashlib.sha256(data).hexdigest()
    start = urllib.request.Request(f'http://{registry}/v2/{repo}/blobs/uploads/', method='POST')
    with urllib.request.urlopen(start) as r:
        location = r.headers['Location']
    upload = location if location.startswith('http') else f'http://{registry}{location}'
    put = urllib.request.Request(f'{upload}{"&" if "?" in upload else "?"}digest={digest}', data=data, method='PUT',
                                 headers={'Content-Type': 'application/octet-stream'})
    urllib.request.urlopen(put).close()
    return {'digest': digest, 'size': len(data)}


def test_plugin_privileges_come_from_the_plugin_config(client, image):
    # PluginTest.test_plugin_privileges: a plugin manifest pushed to the test registry by hand.
    import json
    import urllib.request
    registry = image.split('/')[0]
    config = {'network': {'type': 'host'}, 'mounts': [{'source': '/var/lib/x', 'destination': '/x'}, {'destination': '/tmp'}],
              'linux': {'capabilities': ['CAP_SYS_ADMIN'], 'devices': [{'path': '/dev/fuse'}]}, 'interface': {'types': ['docker.volumedriver/1.0'], 'socket': 'p.sock'}}
    cfg = _push_blob(registry, 'test/plugin', json.dumps(config).encode())
    layer = _push_blob(registry, 'test/plugin', gzip.compress(b''))
    manifest = {'schemaVersion': 2, 'mediaType': 'application/vnd.docker.distribution.manifest.v2+json',
                'config': {'mediaType': 'application/vnd.docker.plugin.v1+json', **cfg},
                'layers': [{'mediaType': 'application/vnd.docker.image.rootfs.diff.tar.gzip', **layer}]}
    put = urllib.request.Request(f'http://{registry}/v2/test/plugin/manifests/v1', data=json.dumps(manifest).encode(), method='PUT',
                                 headers={'Content-Type': manifest['mediaType']})
    urllib.request.urlopen(put).close()
    assert client.plugin_privileges(f'{registry}/test/plugin:v1') == [
        {'Name': 'network', 'Description': 'permissions to access a network', 'Value': ['host']},
        {'Name': 'mount', 'Description': 'host path to mount', 'Value': ['/var/lib/x']},
        {'Name': 'device', 'Description': 'host device to access', 'Value': ['/dev/fuse']},
        {'Name': 'capabilities', 'Description': 'list of additional capabilities required', 'Value': ['CAP_SYS_ADMIN']},
    ]
    # One the registry does not have grants nothing, as dockerd 20.10 answers.
    assert client.plugin_privileges(f'{registry}/test/no-such-plugin:v1') == []
