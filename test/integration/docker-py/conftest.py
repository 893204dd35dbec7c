"""
Shared fixtures for the docker-py (python3-docker) suite, run by test/integration/docker-py.test.ts
against a real berthd: DOCKER_HOST names its socket, BERTH_TEST_IMAGE a busybox image it has pulled.
"""
import os
import uuid

import docker
import pytest


@pytest.fixture(scope='session')
def client():
    c = docker.APIClient(base_url=os.environ['DOCKER_HOST'], version='auto', timeout=60)
    yield c
    c.close()


@pytest.fixture(scope='session')
def image():
    return os.environ['BERTH_TEST_IMAGE']


@pytest.fixture
def containers(client):
    """Containers a test made: force-removed (with their volumes) after it."""
    made = []
    yield made
    for c in made:
        try:
            client.remove_container(c, force=True, v=True)
        except docker.errors.NotFound:
            pass


@pytest.fixture
def run(client, image, containers):
    """Create (and by default start) a container of the test image; returns its ID."""
    def run_container(command=None, start=True, img=None, **kwargs):
        c = client.create_container(img or image, command, **kwargs)['Id']
        containers.append(c)
        if start:
            client.start(c)
        return c
    return run_container


@pytest.fixture
def build(client, image):
    """Build an image FROM the test image with more Dockerfile lines; removed after the test."""
    tags = []

    def build_image(*lines):
        tag = f'berth-docker-py-{uuid.uuid4().hex[:8]}:latest'
        dockerfile = '\n'.join([f'FROM {image}', *lines]) + '\n'
        import io
        for chunk in client.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True, decode=True):
            if 'error' in chunk:
                raise RuntimeError(chunk['error'])
        tags.append(tag)
        return tag
    yield build_image
    for t in tags:
        client.remove_image(t, force=True)


def wait_exit(client, container, timeout=30):
    return client.wait(container, timeout=timeout)['StatusCode']


def logs(client, container):
    return client.logs(container, stdout=True, stderr=True).decode()
