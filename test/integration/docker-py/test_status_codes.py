"""Errors with dockerd's status codes, in the places docker-py looks for them."""
import os
import time

import docker
import pytest

from conftest import wait_exit


@pytest.fixture
def high_client():
    c = docker.from_env(version='auto')
    yield c
    c.close()


def test_load_of_a_garbage_archive_raises_image_load_error(high_client):
    with pytest.raises(docker.errors.ImageLoadError):
        high_client.images.load(b'this is not a tar archive at all' * 100)
    high_client.ping()  # the daemon is fine


def test_unknown_volume_driver_is_404(client):
    with pytest.raises(docker.errors.NotFound) as e:
        client.create_volume('berth-docker-py-vol', driver='no-such-driver')
    assert 'no-such-driver' in e.value.explanation


# dockerd 20.10 gives every exec that cannot start 126 (docker-py's test_exec_run_failed), where
# `docker run` says 127 for a missing program.
@pytest.mark.parametrize('command', ['no-such-program', '/no/such/program', '/etc/passwd'])
def test_exec_of_a_missing_or_unrunnable_executable_is_126(high_client, run, command):
    c = run(['sleep', '60'])
    result = high_client.containers.get(c).exec_run(command)
    assert result.exit_code == 126


def test_removing_a_restarting_container_without_force_is_409(client, run):
    c = run(['sh', '-c', 'exit 1'], host_config=client.create_host_config(restart_policy={'Name': 'always'}))
    # From the third restart on, the back-off leaves it restarting (not running) for 800 ms and more.
    deadline = time.time() + 30
    while not (client.inspect_container(c)['RestartCount'] >= 3 and client.inspect_container(c)['State']['Restarting']):
        assert time.time() < deadline, 'the container did not restart'
        time.sleep(0.02)
    with pytest.raises(docker.errors.APIError) as e:
        client.remove_container(c)
    assert e.value.response.status_code == 409
    client.remove_container(c, force=True)
    with pytest.raises(docker.errors.NotFound):
        client.inspect_container(c)


def test_networking_config_naming_a_missing_network_is_404(client, image):
    config = client.create_networking_config({'no-such-network': client.create_endpoint_config()})
    with pytest.raises(docker.errors.NotFound) as e:
        client.create_container(image, 'true', networking_config=config)
    assert 'no-such-network' in e.value.explanation


def test_volumes_prune_per_api_version(image):
    def prune_with(version):
        c = docker.APIClient(base_url=os.environ['DOCKER_HOST'], version=version)
        c.create_volume('berth-docker-py-named')
        anon = c.create_container(image, 'true', host_config=c.create_host_config(binds=['/anon']))
        c.remove_container(anon)  # leaves its anonymous volume behind
        deleted = c.prune_volumes()['VolumesDeleted'] or []
        names = [v['Name'] for v in c.volumes()['Volumes'] or []]
        for n in names:
            c.remove_volume(n, force=True)
        return deleted

    deleted = prune_with('1.41')  # every unused local volume
    assert 'berth-docker-py-named' in deleted and len(deleted) == 2
    deleted = prune_with('1.43')  # anonymous ones only, unless all=true
    assert 'berth-docker-py-named' not in deleted and len(deleted) == 1
