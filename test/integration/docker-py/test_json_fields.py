"""JSON shapes docker-py's suite compares with dockerd's."""
import io
import tarfile

from conftest import logs, wait_exit


def test_image_config_has_onbuild(client, image):
    config = client.inspect_image(image)['Config']
    assert 'OnBuild' in config and config['OnBuild'] in (None, [])


def test_committed_image_names_its_parent(client, run, image):
    c = run(['touch', '/committed'])
    wait_exit(client, c)
    committed = client.commit(c, repository='berth-docker-py-commit', tag='latest')['Id']
    try:
        assert client.inspect_image(committed)['Parent'] == client.inspect_image(image)['Id']
    finally:
        client.remove_image(committed, force=True)


def test_container_list_shows_the_image_as_given(client, run, image):
    untagged = image.rsplit(':', 1)[0]
    c = run('true', start=False, img=untagged)
    listed = [x for x in client.containers(all=True) if x['Id'] == c][0]
    assert listed['Image'] == untagged
    assert client.inspect_container(c)['Config']['Image'] == untagged


def test_env_keeps_entries_without_a_value(client, run):
    c = run(['env'], environment=['Foo', 'A=1'])
    assert wait_exit(client, c) == 0
    env = client.inspect_container(c)['Config']['Env']
    assert 'Foo' in env and 'A=1' in env
    out = logs(client, c).split('\n')
    assert 'A=1' in out and not any(line.startswith('Foo') for line in out)


def test_diff_has_no_etc_from_berths_own_files(client, run):
    c = run(['touch', '/newfile'])
    wait_exit(client, c)
    assert client.diff(c) == [{'Path': '/newfile', 'Kind': 1}]


def test_diff_still_shows_changes_below_etc(client, run):
    c = run(['touch', '/etc/mine'])
    wait_exit(client, c)
    assert sorted((d['Path'], d['Kind']) for d in client.diff(c)) == [('/etc', 0), ('/etc/mine', 1)]


def test_image_volumes_are_anonymous_volumes_at_create(client, build, run):
    tag = build('VOLUME /vol1')
    c = run(['cat', '/vol1/hello'], start=False, img=tag)
    mounts = client.inspect_container(c)['Mounts']
    assert [(m['Type'], m['Destination']) for m in mounts] == [('volume', '/vol1')]
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode='w') as tar:
        info = tarfile.TarInfo('hello')
        info.size = 3
        tar.addfile(info, io.BytesIO(b'hi\n'))
    assert client.put_archive(c, '/vol1', data.getvalue())
    client.start(c)
    assert wait_exit(client, c) == 0
    assert logs(client, c) == 'hi\n'
