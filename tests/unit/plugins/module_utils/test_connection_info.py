# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""os-brick's iscsi/iser and nfs/glusterfs connection_info (the keys os-brick's
ISCSIConnector and RemoteFsConnector read, and Cinder's drivers return)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.blockyard.storage.plugins.module_utils import connection_info as ci
from ansible_collections.blockyard.storage.plugins.module_utils.errors import InvalidInput
from ansible_collections.blockyard.storage.plugins.module_utils.targets.base import Chap, TargetSpec, validate_iqn

CHAP = Chap('u' * 20, 'p' * 16)
IQN = 'iqn.2026-11.org.blockyard:volume-db01'


def test_iscsi_keys():
    info = ci.iscsi('192.0.2.10:3260', IQN, 1, 'db01', chap=CHAP)
    assert info['driver_volume_type'] == 'iscsi'
    assert sorted(info['data']) == sorted(ci.ISCSI_KEYS)
    assert info['data'] == {'target_discovered': False, 'target_portal': '192.0.2.10:3260', 'target_iqn': IQN,
                            'target_lun': 1, 'volume_id': 'db01', 'auth_method': 'CHAP', 'auth_username': 'u' * 20,
                            'auth_password': 'p' * 16, 'discard': True}


def test_iser_without_chap_and_multipath():
    portals = [('192.0.2.10:3260', IQN, 0), ('192.0.2.11:3260', IQN, 0)]
    info = ci.iscsi('192.0.2.10:3260', IQN, 0, 'db01', iser=True, portals=portals)
    assert info['driver_volume_type'] == 'iser'
    assert 'auth_method' not in info['data'] and 'auth_password' not in info['data']
    assert info['data']['target_portals'] == ['192.0.2.10:3260', '192.0.2.11:3260']
    assert info['data']['target_iqns'] == [IQN, IQN] and info['data']['target_luns'] == [0, 0]


def test_share_info():
    info = ci.share('glusterfs', 'gluster1:/vols', 'volume-db01.s1', 'qcow2', '-o backupvolfile-server=g2',
                    '/var/lib/nova/mnt')
    assert info == {'driver_volume_type': 'glusterfs', 'mount_point_base': '/var/lib/nova/mnt',
                    'data': {'export': 'gluster1:/vols', 'name': 'volume-db01.s1',
                             'options': '-o backupvolfile-server=g2', 'format': 'qcow2'}}
    with pytest.raises(InvalidInput):
        ci.share('cifs', 'x:/y', 'v', 'raw')
    with pytest.raises(InvalidInput):
        ci.share('nfs', 'x:/y', 'v', 'vmdk')


@pytest.mark.parametrize('iqn', ['iqn.2026-11.org.blockyard:volume-db01', 'iqn.1993-08.org.debian:01:abc',
                                 'eui.02004567a425678d'])
def test_good_iqns(iqn):
    assert validate_iqn(iqn) == iqn


@pytest.mark.parametrize('iqn', ['', 'iqn.2026-11.Org.x', 'iqn.26-11.org.x', 'iqn.2026-11.org.x:a b',
                                 'iqn.2026-11.org.x:a/b', 'x' * 300, None, 'eui.123'])
def test_bad_iqns(iqn):
    with pytest.raises(InvalidInput):
        validate_iqn(iqn)


def test_spec_and_chap_checks():
    with pytest.raises(InvalidInput):
        Chap('user', 'short')
    with pytest.raises(InvalidInput):
        Chap('user', 'has a space 123')
    with pytest.raises(InvalidInput):
        TargetSpec(IQN, portals=['192.0.2.1'])
    with pytest.raises(InvalidInput):
        TargetSpec(IQN, portals=['192.0.2.1:70000'])
    spec = TargetSpec(IQN, initiators=['iqn.2026-11.org.x:b', 'iqn.2026-11.org.x:a', 'iqn.2026-11.org.x:a'],
                      chap=CHAP, portals=['0.0.0.0:3260', '[::]:3260'])
    assert spec.initiators == ['iqn.2026-11.org.x:a', 'iqn.2026-11.org.x:b']
    assert spec.secrets() == ['p' * 16] and 'p' * 16 not in repr(CHAP)
