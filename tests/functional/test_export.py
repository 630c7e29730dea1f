# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The export module's core (exports.ensure_export) without a target:
native exports (RBD volumes on the Ceph lab, file volumes on shares), the
refusal to hand out a qcow2 container as a LUN, the CHAP store, and input
checks. The iSCSI exports through a real tgtd are in test_export_iscsi.py."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import stat

import pytest

import contract as ct
from ansible_collections.blockyard.storage.plugins.module_utils import connection_info, exports
from ansible_collections.blockyard.storage.plugins.module_utils.errors import (
    InvalidInput, NotFound, StorageError, UnsafeImage, Unsupported)

OS_BRICK_RBD_KEYS = sorted(connection_info.RBD_KEYS)


def eparams(loc, volume, **kwargs):
    params = dict(ct.DEFAULTS, **loc.params)
    params.update(volume=volume, state='present', connector=None, protocol=None, target_provider='tgt', portal=None,
                  iqn_prefix=exports.DEFAULT_IQN_PREFIX, chap=True, secrets_dir=None, config_dir=None,
                  control_port=None, saveconfig=None, secret_uuid=None)
    params.update(kwargs)
    return params


@pytest.fixture
def secrets_dir(tmp_path):
    return str(tmp_path / 'secrets')


@pytest.fixture
def rbd_loc():
    root = ct.rbd_root()
    # a volume to attach lives in a pool's default namespace (os-brick has no namespaces)
    loc = root.fresh('x')
    return loc


def test_rbd_volume_is_handed_out_natively(rbd_loc, secrets_dir):
    loc = rbd_loc
    ct.volume(loc, 'V', size='4M')
    listing = loc.listing()
    # in a namespace: os-brick's rbd connector cannot name it
    with pytest.raises(Unsupported) as caught:
        exports.ensure_export(eparams(loc, 'V', secrets_dir=secrets_dir), False)
    assert 'namespace' in caught.value.msg
    name = 'exp-%s' % loc.namespace
    from ansible_collections.blockyard.storage.plugins.module_utils import volumes
    vp = ct.vparams(loc, name, size='4M')
    vp['namespace'] = None
    try:
        volumes.ensure_volume(vp, False)
        for check_mode in (True, False, False):
            changed, result, diff = exports.ensure_export(eparams(loc, name, namespace=None, secrets_dir=secrets_dir,
                                                                  secret_uuid='457eb676-33da-42ec-9a8c-9293d545c337'),
                                                          check_mode)
            assert not changed and result['actions'] == []
            info = result['connection_info']
            assert info['driver_volume_type'] == 'rbd'
            assert sorted(info['data']) == OS_BRICK_RBD_KEYS
            assert info['data']['name'] == 'rbd/volume-%s' % name
            assert info['data']['hosts'] == ['127.0.0.1'] and info['data']['ports'][0].isdigit()
            assert info['data']['secret_uuid'] == '457eb676-33da-42ec-9a8c-9293d545c337'
            assert result['export']['protocol'] == 'rbd'
        assert not os.path.exists(secrets_dir)
        assert loc.listing() == listing
    finally:
        volumes.ensure_volume(dict(vp, state='absent'), False)


def test_qcow2_data_is_never_a_lun(tmp_path, secrets_dir):
    vdir = str(tmp_path / 'v')
    os.mkdir(vdir)
    loc = ct.FileLocation('file-dir', vdir)
    ct.volume(loc, 'Q', size='4M', format='qcow2')
    ct.volume(loc, 'S', size='4M')
    ct.snapshot(loc, 'S', 's1')
    listing = loc.listing()
    for name, word in (('Q', 'qcow2'), ('S', 'snapshots')):
        for check_mode in (True, False):
            with pytest.raises(Unsupported) as caught:
                exports.ensure_export(eparams(loc, name, portal='127.0.0.1:3260', secrets_dir=secrets_dir,
                                              config_dir=str(tmp_path / 'conf')), check_mode)
            assert name in caught.value.msg and word in caught.value.msg and 'format: raw' in caught.value.msg
    assert loc.listing() == listing
    assert not os.path.exists(secrets_dir) and not os.path.exists(str(tmp_path / 'conf'))


def test_bad_input(tmp_path, secrets_dir):
    vdir = str(tmp_path / 'v')
    os.mkdir(vdir)
    loc = ct.FileLocation('file-dir', vdir)
    ct.volume(loc, 'V', size='4M')
    listing = loc.listing()
    bad = [
        (dict(connector='iqn.x'), InvalidInput, 'connector'),
        (dict(connector={'initiator': 'not an iqn'}), InvalidInput, 'initiator'),
        (dict(connector={'initiator': 'iqn.2026-11.org.x:h', 'evil': 1}), InvalidInput, 'evil'),
        (dict(portal=None), InvalidInput, 'portal'),
        (dict(portal='host:port'), InvalidInput, 'Portal'),
        (dict(iqn_prefix='IQN bad '), InvalidInput, 'iSCSI name'),
        (dict(secrets_dir='relative'), InvalidInput, 'absolute'),
    ]
    for extra, exc, word in bad:
        params = eparams(loc, 'V', portal='127.0.0.1:3260', secrets_dir=secrets_dir, config_dir=str(tmp_path / 'c'))
        params.update(extra)
        with pytest.raises(exc) as caught:
            exports.ensure_export(params, False)
        assert word in caught.value.msg, (extra, caught.value.msg)
    with pytest.raises(NotFound):
        exports.ensure_export(eparams(loc, 'nothere', portal='127.0.0.1:3260', secrets_dir=secrets_dir), False)
    assert loc.listing() == listing and not os.path.exists(secrets_dir)


def test_chap_store(tmp_path):
    store = exports.ChapStore(str(tmp_path / 's'))
    iqn = 'iqn.2026-11.org.blockyard:volume-v'
    assert store.read(iqn) is None
    chap = exports.new_chap()
    assert len(chap.username) == 20 and len(chap.password) == 16
    assert not set(chap.username + chap.password) & set('0O1lI')
    assert 'password' not in repr(chap) and chap.password not in repr(chap)
    store.write(iqn, chap)
    assert stat.S_IMODE(os.stat(store.path(iqn)).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(store.directory).st_mode) == 0o700
    assert store.read(iqn) == chap
    assert exports.new_chap() != chap
    # readable by others: not trusted
    os.chmod(store.path(iqn), 0o644)
    with pytest.raises(UnsafeImage):
        store.read(iqn)
    os.chmod(store.path(iqn), 0o600)
    # a link in its place is refused, its target untouched
    canary = tmp_path / 'canary'
    canary.write_text('{"username": "x", "password": "yyyyyyyyyyyyyyyy"}')
    os.chmod(str(canary), 0o600)
    os.unlink(store.path(iqn))
    os.symlink(str(canary), store.path(iqn))
    with pytest.raises(StorageError):
        store.read(iqn)
    os.unlink(store.path(iqn))
    with open(store.path(iqn), 'w') as handle:
        handle.write('garbage')
    os.chmod(store.path(iqn), 0o600)
    with pytest.raises(InvalidInput):
        store.read(iqn)


def test_share_volumes_are_handed_out_natively(tmp_path, monkeypatch, secrets_dir):
    """A file volume on a share: the share's connection_info in the volume's
    own format (qcow2 included: the hypervisor reads the image format)."""
    from ansible_collections.blockyard.storage.plugins.module_utils.backends.file import backend as fb
    base = tmp_path / 'mnt'
    share = '192.0.2.5:/vols'
    import hashlib
    point = base / hashlib.md5(share.encode('utf-8')).hexdigest()
    point.mkdir(parents=True)
    monkeypatch.setattr('ansible_collections.blockyard.storage.plugins.module_utils.shares.require_mounted',
                        lambda b, s: str(point))
    for fstype, kind in (('nfs4', 'nfs'), ('fuse.glusterfs', 'glusterfs')):
        monkeypatch.setattr(fb.fileio, 'fs_type', lambda path, _t=fstype: _t)
        params = dict(ct.DEFAULTS, backend='file', share=share, mount_point_base=str(base))
        loc = ct.Location('shares', params, str(point))
        ct.volume(loc, 'Q%s' % kind, size='4M', format='qcow2')
        changed, result, _d = exports.ensure_export(eparams(loc, 'Q%s' % kind, secrets_dir=secrets_dir), False)
        assert not changed
        assert result['connection_info'] == {'driver_volume_type': kind, 'mount_point_base': str(base), 'data': {
            'export': share, 'name': 'volume-Q%s' % kind, 'options': None, 'format': 'qcow2'}}
    assert not os.path.exists(secrets_dir)
