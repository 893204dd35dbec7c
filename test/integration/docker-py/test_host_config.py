"""Every HostConfig option berth accepts takes effect, or is refused with a 400 naming it."""
import os
import uuid

import docker
import pytest

from conftest import logs, wait_exit


def output(client, run, command, **host):
    c = run(['sh', '-c', command], host_config=client.create_host_config(**host))
    assert wait_exit(client, c) == 0, logs(client, c)
    return logs(client, c)


def test_ulimits(client, run):
    ulimits = [docker.types.Ulimit(name='nofile', soft=1024, hard=2048)]
    assert output(client, run, 'ulimit -n; ulimit -Hn', ulimits=ulimits).split() == ['1024', '2048']


def test_shm_size(client, run):
    assert 'size=32768k' in output(client, run, 'grep " /dev/shm " /proc/mounts', shm_size='32M')


def test_default_shm_size_is_64m(client, run):
    assert 'size=65536k' in output(client, run, 'grep " /dev/shm " /proc/mounts')


def test_devices_are_made_and_allowed(client, run):
    # /dev/loop-control is char 10:237, outside the default device list: the node and the cgroup rule both matter.
    out = output(client, run, 'stat -c "%t:%T" /dev/myloop; exec 3</dev/myloop && echo readable; (exec 4>/dev/myloop) 2>/dev/null || echo not-writable',
                 devices=['/dev/loop-control:/dev/myloop:r'])
    assert out.split() == ['a:ed', 'readable', 'not-writable']


def test_missing_device_is_refused(client, image):
    with pytest.raises(docker.errors.APIError) as e:
        client.create_container(image, 'true', host_config=client.create_host_config(devices=['/dev/no-such-device']))
    assert e.value.response.status_code == 400
    assert '/dev/no-such-device' in e.value.explanation


def test_pid_mode_host_sees_host_processes(client, run):
    out = output(client, run, 'ls /proc 2>/dev/null | grep -c "^[0-9]"; cat /proc/1/comm', pid_mode='host')
    count, init = out.split()[:2]
    assert int(count) > 10
    assert init != 'sh'
    # the container's own pid namespace otherwise: its process is pid 1
    assert output(client, run, 'echo $$') == '1\n'


def test_ipc_mode_host_shares_dev_shm(client, run):
    name = f'berth-docker-py-{uuid.uuid4().hex[:8]}'
    with open(f'/dev/shm/{name}', 'w'):
        pass
    try:
        assert name in output(client, run, 'ls /dev/shm', ipc_mode='host')
        assert name not in output(client, run, 'ls /dev/shm')
    finally:
        os.unlink(f'/dev/shm/{name}')


def test_group_add(client, run):
    assert output(client, run, 'id -G', group_add=['1234', 'nobody']).split() == ['0', '1234', '65534']


def test_image_user_gets_its_supplementary_groups(client, build, run):
    tag = build('RUN echo "staff:x:50:nobody" >> /etc/group', 'USER nobody')
    c = run(['id', '-G'], img=tag)
    assert wait_exit(client, c) == 0
    assert logs(client, c).split() == ['65534', '50']


def test_oom_score_adj(client, run):
    assert output(client, run, 'cat /proc/1/oom_score_adj', oom_score_adj=500) == '500\n'


def test_no_new_privileges(client, run):
    assert 'NoNewPrivs:\t1' in output(client, run, 'grep NoNewPrivs /proc/self/status', security_opt=['no-new-privileges'])


def test_runtime_runc_is_accepted_and_reported(client, run):
    c = run('true', start=False, host_config=client.create_host_config(runtime='runc'))
    assert client.inspect_container(c)['HostConfig']['Runtime'] == 'runc'
    default = run('true', start=False)
    assert client.inspect_container(default)['HostConfig']['Runtime'] == client.info()['DefaultRuntime']


@pytest.mark.parametrize('host, field', [
    ({'sysctls': {'net.ipv4.ip_forward': '1'}}, 'Sysctls'),
    ({'pid_mode': 'container:other'}, 'PidMode'),
    ({'storage_opt': {'size': '1G'}}, 'StorageOpt'),
    ({'runtime': 'no-such-runtime'}, 'runtime'),
    ({'log_config': docker.types.LogConfig(type='no-such-driver')}, 'no-such-driver'),
    ({'security_opt': ['apparmor=some-profile']}, 'SecurityOpt'),
    ({'oom_score_adj': 5000}, 'OomScoreAdj'),
])
def test_unsupported_options_are_refused_by_name(client, image, host, field):
    with pytest.raises(docker.errors.APIError) as e:
        c = client.create_container(image, 'true', host_config=client.create_host_config(**host))
        # options checked at start (isolators) must fail the start, never be dropped
        try:
            client.start(c)
        finally:
            client.remove_container(c, force=True)
    assert e.value.response.status_code == 400
    assert field in e.value.explanation


def test_mac_address_is_applied_and_reported(client, run):
    mac = '02:42:ac:11:00:99'
    c = run(['cat', '/sys/class/net/eth0/address'], mac_address=mac)
    assert wait_exit(client, c) == 0
    assert logs(client, c) == f'{mac}\n'
    info = client.inspect_container(c)
    assert info['Config']['MacAddress'] == mac
    running = run(['sleep', '60'], mac_address=mac.replace('99', '98'))
    settings = client.inspect_container(running)['NetworkSettings']
    assert settings['MacAddress'] == mac.replace('99', '98')
    assert settings['Networks']['bridge']['MacAddress'] == mac.replace('99', '98')


def test_bad_mac_address_is_refused(client, image):
    with pytest.raises(docker.errors.APIError) as e:
        client.create_container(image, 'true', mac_address='not-a-mac')
    assert e.value.response.status_code == 400
    assert 'MAC' in e.value.explanation
