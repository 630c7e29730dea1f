# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pure parts of the rbd backend: journal validation, lock holder
liveness, the Ceph connection settings, and os-brick's rbd
connection_info (tested against the keys os-brick's RBDConnector and
Cinder's RBDDriver.initialize_connection use)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import socket
import subprocess
import sys

import pytest

from ansible_collections.blockyard.storage.plugins.module_utils import ceph, connection_info
from ansible_collections.blockyard.storage.plugins.module_utils.backends.rbd import bookkeeping as bk
from ansible_collections.blockyard.storage.plugins.module_utils.errors import InvalidInput, Unsupported
from ansible_collections.blockyard.storage.plugins.module_utils.model import DataRef

PARENT = {'pool': 'rbd', 'namespace': '', 'image': 'volume-a', 'snapshot': 'volume-v.clone_snap', 'id': '1234abcd'}


@pytest.mark.parametrize('journal', [
    {'op': 'create', 'parent': None, 'size': 4096},
    {'op': 'create', 'parent': PARENT, 'size': 1 << 30},
    {'op': 'clone', 'snapshot': 'volume-b.clone_snap'},
    {'op': 'snapshot_create', 'snapshot': 's1'},
    {'op': 'snapshot_delete', 'snapshot': 's-1_x'},
    {'op': 'revert', 'snapshot': 's1', 'size': 512},
    {'op': 'delete', 'parent': None},
    {'op': 'delete', 'parent': dict(PARENT, snapshot='snapshot-s1')},
])
def test_valid_journals(journal):
    assert bk.validate_journal('v', dict(journal)) == journal


@pytest.mark.parametrize('journal, word', [
    ('create', 'no known operation'),
    ({'op': 'rm -rf'}, 'no known operation'),
    ({'op': 'create', 'parent': None, 'size': 1, 'image': 'x'}, 'unknown fields'),
    ({'op': 'create', 'parent': None, 'size': -1}, 'size'),
    ({'op': 'create', 'parent': None, 'size': 2 ** 63}, 'size'),
    ({'op': 'create', 'parent': None, 'size': True}, 'size'),
    ({'op': 'create', 'parent': dict(PARENT, image='a/b'), 'size': 1}, 'parent'),
    ({'op': 'create', 'parent': dict(PARENT, extra=1), 'size': 1}, 'parent'),
    ({'op': 'create', 'parent': 'rbd/volume-a', 'size': 1}, 'parent'),
    ({'op': 'create', 'parent': dict(PARENT, snapshot='volume-other.clone_snap'), 'size': 1}, 'another copy'),
    ({'op': 'delete', 'parent': dict(PARENT, snapshot='volume-other.clone_snap')}, 'another copy'),
    ({'op': 'clone', 'snapshot': 'snapshot-s1'}, "copy's snapshot"),
    ({'op': 'clone', 'snapshot': 'volume-x.y.clone_snap'}, "copy's snapshot"),
    ({'op': 'snapshot_create', 'snapshot': '../s1'}, 'snapshot name'),
    ({'op': 'snapshot_delete', 'snapshot': 's.1'}, 'snapshot name'),
    ({'op': 'revert', 'snapshot': 's1', 'size': '512'}, 'size'),
])
def test_invalid_journals(journal, word):
    with pytest.raises(bk.InvalidJournal) as caught:
        bk.validate_journal('v', journal)
    assert 'volume v' in caught.value.msg and 'force=true' in caught.value.msg
    assert word in caught.value.msg


def test_names():
    assert bk.image_name('db01') == 'volume-db01'
    assert bk.snap_name('s1') == 'snapshot-s1'
    assert bk.clone_snap('c') == 'volume-c.clone_snap'


def test_holder_liveness():
    me = bk.me()
    assert me['pid'] == os.getpid() and me['host'] == socket.gethostname()
    assert not bk.holder_is_dead(me)                      # this process runs
    child = subprocess.Popen([sys.executable, '-c', 'pass'])
    child.wait()
    dead = dict(me, pid=child.pid, start=None)
    assert bk.holder_is_dead(dead)                        # gone
    assert bk.holder_is_dead(dict(me, start='1'))         # pid reused by another process
    assert bk.holder_is_dead(dict(me, boot='another-boot'))
    assert not bk.holder_is_dead(dict(me, host='elsewhere', pid=child.pid))   # another host: wait
    for bad in (None, 'x', {}, dict(me, pid='1'), dict(me, pid=0)):
        assert not bk.holder_is_dead(bad)


def _ref(**kwargs):
    base = dict(pool='volumes', image='volume-db01',
                cluster={'conf': '/etc/ceph/ceph.conf', 'user': 'cinder', 'keyring': '/etc/ceph/k', 'cluster_name': 'ceph'})
    base.update(kwargs)
    return DataRef('rbd', 'raw', 1 << 30, **base)


# the keys Cinder's RBDDriver.initialize_connection returns (os-brick's RBDConnector reads name, hosts, ports,
# cluster_name, auth_username; Nova's libvirt driver reads auth_enabled, secret_type, secret_uuid)
OS_BRICK_RBD_KEYS = ['auth_enabled', 'auth_username', 'cluster_name', 'discard', 'hosts', 'name', 'ports',
                     'secret_type', 'secret_uuid', 'volume_id']


def test_rbd_connection_info():
    info = connection_info.rbd(_ref(), ['10.0.0.1', '10.0.0.2'], [6789, '6789'], 'db01', secret_uuid='u-1')
    assert sorted(info) == ['data', 'driver_volume_type'] and info['driver_volume_type'] == 'rbd'
    data = info['data']
    assert sorted(data) == OS_BRICK_RBD_KEYS
    assert data['name'] == 'volumes/volume-db01' and data['name'].count('/') == 1
    assert data['hosts'] == ['10.0.0.1', '10.0.0.2'] and data['ports'] == ['6789', '6789']
    assert (data['auth_enabled'], data['auth_username'], data['secret_type'], data['secret_uuid']) == \
        (True, 'cinder', 'ceph', 'u-1')
    assert data['cluster_name'] == 'ceph' and data['volume_id'] == 'db01' and data['discard'] is True
    assert 'keyring' not in data and '/etc/ceph/k' not in repr(info)


def test_rbd_connection_info_refusals():
    with pytest.raises(Unsupported):
        connection_info.rbd(_ref(namespace='ns1'), ['h'], ['1'], 'v')
    with pytest.raises(InvalidInput):
        connection_info.rbd(_ref(snapshot='snapshot-s1'), ['h'], ['1'], 'v')
    with pytest.raises(InvalidInput):
        connection_info.rbd(_ref(), ['h', 'i'], ['1'], 'v')
    with pytest.raises(InvalidInput):
        connection_info.rbd(DataRef('file', 'raw', 1, path='/x'), ['h'], ['1'], 'v')


def test_connection_settings(tmp_path):
    conf = tmp_path / 'ceph.conf'
    conf.write_text('[global]\n')
    s = ceph.settings({'ceph_conf': str(conf), 'ceph_user': 'client.cinder'})
    assert s == {'conf': str(conf), 'user': 'cinder', 'keyring': None, 'cluster_name': 'ceph', 'timeout': 10}
    for params, word in (({'ceph_conf': str(tmp_path / 'nope')}, 'does not exist'),
                         ({'ceph_conf': str(conf) + ':x'}, '":"'),
                         ({'ceph_conf': 'relative.conf'}, 'absolute'),
                         ({'ceph_conf': str(conf), 'ceph_user': 'a b'}, 'ceph_user'),
                         ({'ceph_conf': str(conf), 'ceph_user': 'admin\n'}, 'ceph_user'),
                         ({'ceph_conf': str(conf), 'connect_timeout': 0}, 'connect_timeout'),
                         ({'ceph_conf': str(conf), 'ceph_keyring': str(tmp_path / 'k')}, 'ceph_keyring')):
        with pytest.raises(InvalidInput) as caught:
            ceph.settings(params)
        assert word in caught.value.msg, (params, caught.value.msg)


def test_qemu_rbd_spec_carries_no_key():
    from ansible_collections.blockyard.storage.plugins.module_utils import qemu_img
    fmt, spec = qemu_img._source(_ref(namespace='ns', snapshot='snapshot-s1'))
    assert fmt == 'raw'
    assert spec == 'rbd:volumes/ns/volume-db01@snapshot-s1:conf=/etc/ceph/ceph.conf:id=cinder:keyring=/etc/ceph/k'
