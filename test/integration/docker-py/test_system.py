"""Swarm answers off-swarm, /info fields, and the small endpoints docker-py's suite calls."""
import docker
import pytest

NOT_A_MANAGER = 'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again.'


def test_leave_swarm_force_succeeds_off_swarm(client):
    # docker-py's network tests call this in every tearDown.
    assert client.leave_swarm(force=True) is True


def test_leave_swarm_without_force_is_503(client):
    with pytest.raises(docker.errors.APIError) as e:
        client.leave_swarm()
    assert e.value.response.status_code == 503
    assert 'This node is not part of a swarm' in e.value.explanation


@pytest.mark.parametrize('call', [
    lambda c: c.inspect_swarm(),
    lambda c: c.services(),
    lambda c: c.tasks(),
    lambda c: c.nodes(),
    lambda c: c.secrets(),
    lambda c: c.configs(),
    lambda c: c.inspect_service('web'),
    lambda c: c.get_unlock_key(),
])
def test_swarm_manager_routes_are_503(client, call):
    with pytest.raises(docker.errors.APIError) as e:
        call(client)
    assert e.value.response.status_code == 503
    assert e.value.explanation == NOT_A_MANAGER


def test_swarm_init_is_refused_clearly(client):
    with pytest.raises(docker.errors.APIError) as e:
        client.init_swarm()
    assert e.value.response.status_code == 503
    assert 'swarm' in e.value.explanation


def test_info_has_dockerds_fields(client):
    info = client.info()
    assert info['Swarm']['LocalNodeState'] == 'inactive'
    assert info['Debug'] is False
    assert info['ExperimentalBuild'] is False
    for key in ['ID', 'MemoryLimit', 'SwapLimit', 'CpuCfsQuota', 'CPUShares', 'PidsLimit', 'IPv4Forwarding',
                'NFd', 'SystemTime', 'LoggingDriver', 'NEventsListener', 'OSVersion', 'HttpProxy', 'Labels',
                'LiveRestoreEnabled', 'InitBinary', 'DefaultRuntime', 'Runtimes']:
        assert key in info, key
    assert info['NFd'] > 0
    assert info['ID'] and info['ID'] == client.info()['ID']
    assert info['DefaultRuntime'] in info['Runtimes']


def test_plugins_list_is_empty(client):
    assert client.plugins() == []


def test_build_prune(client):
    result = client.prune_builds()
    assert result['SpaceReclaimed'] == 0
    assert result['CachesDeleted'] in ([], None)


def test_distribution_inspect(client, image):
    data = client.inspect_distribution(image)
    assert data['Descriptor']['digest'].startswith('sha256:')
    assert data['Descriptor']['size'] > 0
    assert {'os': 'linux', 'architecture': 'amd64'}.items() <= data['Platforms'][0].items()


def test_distribution_inspect_of_missing_image_is_404(client, image):
    with pytest.raises(docker.errors.NotFound):
        client.inspect_distribution(image.rsplit('/', 1)[0] + '/no-such-image:latest')
