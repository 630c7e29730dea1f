# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rbd connection_info of the collection (connection_info.rbd) read by
os-brick's own RBDConnector (os-brick of the Cinder venv, .venv-cinder) as
the oracle: connect_volume with do_local_attach=False (librbd, no kernel
map), cinderlib-style (the keyring's contents in the connection
properties, only here in the test), on the Ceph lab (scripts/ceph-lab,
tests/functional/cephlab.py). os-brick reads the data the core's side
wrote, writes data the core's side reads back, and disconnects.

The Cinder venv gets Debian's rados and rbd modules (python3-rados,
python3-rbd) as scripts/install gives them to .venv: a directory of two
symlinks on PYTHONPATH, when the venv's Python has their ABI."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import json
import os
import subprocess
import textwrap

import pytest

from interop import cinder_python

MIB = 1024 ** 2
DIST = '/usr/lib/python3/dist-packages'
POOL = 'rbd2'

ORACLE = textwrap.dedent('''
    import hashlib, json, sys
    from os_brick.initiator.connectors import rbd as rbd_connector
    data = json.loads(sys.stdin.read())
    connector = rbd_connector.RBDConnector(root_helper='sudo', do_local_attach=False)
    device = connector.connect_volume(data)
    handle = device['path']
    handle.seek(0)
    first = handle.read(1024 * 1024)
    handle.seek(2 * 1024 * 1024)
    handle.write(b'\\x5a' * 65536)
    handle.flush()
    conf = handle.rbd_conf
    connector.disconnect_volume(data, device)
    import os
    print(json.dumps({'sha256': hashlib.sha256(first).hexdigest(), 'length': len(first),
                      'conf_left': os.path.exists(conf)}))
''')


@pytest.fixture(scope='module')
def lab():
    """The Ceph lab (started here when it does not run; stopped at the end
    when this module started it)."""
    import cephlab
    try:
        cephlab.ensure()
    except RuntimeError as exc:
        pytest.fail('rbd: %s' % exc, pytrace=False)
    yield cephlab
    cephlab.stop_if_started()


@pytest.fixture(scope='module')
def cinder_env(tmp_path_factory):
    """The environment in which the Cinder venv's Python imports rados and
    rbd (Debian's modules, linked like scripts/install links them)."""
    python = cinder_python()
    suffix = subprocess.run([python, '-c', 'import importlib.machinery as m; print(m.EXTENSION_SUFFIXES[0])'],
                            stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout.strip()
    if not all(os.path.isfile(os.path.join(DIST, mod + suffix)) for mod in ('rados', 'rbd')):
        pytest.fail('no python3-rados/python3-rbd for %s (the Cinder venv\'s %s): Debian builds them for its '
                    'own CPython only' % (suffix, python), pytrace=False)
    links = tmp_path_factory.mktemp('cinder-ceph')
    for mod in ('rados', 'rbd'):
        os.symlink(os.path.join(DIST, mod + suffix), str(links / (mod + suffix)))
    env = dict(os.environ, PYTHONPATH=str(links))
    res = subprocess.run([python, '-c', 'import rados, rbd, os_brick'], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    assert res.returncode == 0, res.stdout
    return python, env


def _params(lab, **extra):
    import contract as ct
    params = dict(ct.DEFAULTS, **lab.params(backend='rbd', pool=POOL))
    params.update(state='present', size=None, format=None, provisioning=None, force=False, source_volume=None,
                  source_snapshot=None, source_image=None, source_image_format=None, source_location=None)
    params.update(extra)
    return params


@pytest.mark.parametrize('user', ['admin', 'blockyard'])
def test_os_brick_rbd_connector_reads_and_writes(lab, cinder_env, user):
    import rbd
    from ansible_collections.blockyard.storage.plugins.module_utils import connection_info, volumes
    python, env = cinder_env
    keyring = lab.ADMIN_KEYRING if user == 'admin' else lab.USER_KEYRING
    name = 'brick-%s-%d' % (user, os.getpid())
    params = _params(lab, name=name, ceph_user=user, ceph_keyring=keyring)
    try:
        changed, result, _d = volumes.ensure_volume(dict(params, size='4M'), False)
        assert changed
        backend, _notes = volumes.locate(params, name)
        vol = backend.require(name)
        ioctx = backend.cluster.ioctx(POOL)
        image = rbd.Image(ioctx, result['volume']['details']['image'])
        try:
            written = bytes(bytearray((i * 7 + 3) % 251 for i in range(MIB)))
            image.write(written, 0)
            image.flush()
        finally:
            image.close()
        info = connection_info.rbd(backend.data_ref(vol), *backend.cluster.monitors(), volume_id=name)
        assert info['data']['auth_username'] == user
        data = dict(info['data'])
        with open(keyring) as handle:
            data['keyring'] = handle.read()     # cinderlib-style; only here, never in connection_info
        res = subprocess.run([python, '-c', ORACLE], input=json.dumps(data), env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, universal_newlines=True, timeout=120, check=False)
        assert res.returncode == 0, res.stderr[-4000:]
        answer = json.loads(res.stdout.strip().splitlines()[-1])
        assert answer['length'] == MIB
        assert answer['sha256'] == hashlib.sha256(written).hexdigest(), 'os-brick read other data'
        assert answer['conf_left'] is False
        image = rbd.Image(ioctx, result['volume']['details']['image'], read_only=True)
        try:
            assert image.read(2 * MIB, 65536) == b'\x5a' * 65536, 'the core does not read what os-brick wrote'
            assert list(image.watchers_list()) == [], 'os-brick left a watcher after disconnect_volume'
        finally:
            image.close()
    finally:
        volumes.ensure_volume(dict(params, state='absent', force=True), False)
