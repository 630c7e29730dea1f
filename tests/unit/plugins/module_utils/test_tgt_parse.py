# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The tgt provider's pure parts: the parser of `tgtadm --op show --mode
target` (on output captured from tgtd 1.0.85) and the config it writes (the
real tgtd behaviour is in tests/functional/test_iscsi_target.py)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.blockyard.storage.plugins.module_utils.errors import InvalidInput
from ansible_collections.blockyard.storage.plugins.module_utils.model import DataRef
from ansible_collections.blockyard.storage.plugins.module_utils.targets import tgt
from ansible_collections.blockyard.storage.plugins.module_utils.targets.base import Chap, Lun, TargetSpec

SHOW = '''Target 1: iqn.2026-11.org.example:t1
    System information:
        Driver: iscsi
        State: ready
    I_T nexus information:
        I_T nexus: 3
            Initiator: iqn.2026-11.org.example:good alias: none
            Connection: 0
                IP Address: 127.0.0.1
    LUN information:
        LUN: 0
            Type: controller
            SCSI ID: IET     00010000
            SCSI SN: beaf10
            Size: 0 MB, Block size: 1
            Backing store type: null
            Backing store path: None
            Backing store flags:
        LUN: 1
            Type: disk
            SCSI ID: IET     00010001
            SCSI SN: BYT0001
            Size: 67 MB, Block size: 512
            Backing store type: rdwr
            Backing store path: /tmp/disk.img
            Backing store flags:
    Account information:
        chapuser1
        mutual1 (outgoing)
    ACL information:
        0.0.0.0/32
        iqn.2026-11.org.example:good
Target 2: iqn.2026-11.org.example:t2
    System information:
        Driver: iscsi
        State: ready
    I_T nexus information:
    LUN information:
    Account information:
    ACL information:
        ALL
'''


def test_parse_show():
    targets = tgt.parse_show(SHOW)
    one = targets['iqn.2026-11.org.example:t1']
    assert one['tid'] == 1 and one['driver'] == 'iscsi' and one['sessions'] == 1
    assert one['luns'][1] == {'type': 'disk', 'serial': 'BYT0001', 'size': '67 MB, Block size: 512',
                              'bstype': 'rdwr', 'path': '/tmp/disk.img', 'flags': ''}
    assert one['accounts'] == [('chapuser1', False), ('mutual1', True)]
    assert one['acl'] == ['0.0.0.0/32', 'iqn.2026-11.org.example:good']
    assert targets['iqn.2026-11.org.example:t2']['acl'] == ['ALL']


def _spec(**kwargs):
    ref = DataRef('file', 'raw', 1 << 20, path='/srv/v/volume-a')
    return TargetSpec('iqn.2026-11.org.example:a', luns=[Lun(1, ref)], **kwargs)


def test_render_acl_and_chap():
    provider = tgt.TgtProvider({'config_dir': '/nonexistent'})
    text = provider.render(_spec(initiators=['iqn.2026-11.org.example:good'],
                                 chap=Chap('user1', 'password1234567')))
    assert 'initiator-address 0.0.0.0/32\n    initiator-name iqn.2026-11.org.example:good\n' in text
    assert 'incominguser user1 password1234567\n' in text
    assert 'initiator-address ALL' in provider.render(_spec(allow_all=True))
    assert 'initiator-name' not in provider.render(_spec())
    assert 'scsi_sn %s\n' % tgt.default_serial('iqn.2026-11.org.example:a', 1) in text


def test_render_refuses_config_syntax_in_paths():
    provider = tgt.TgtProvider({'config_dir': '/nonexistent'})
    ref = DataRef('file', 'raw', 1, path='/srv/v/a b')
    with pytest.raises(InvalidInput):
        provider.render(TargetSpec('iqn.2026-11.org.example:a', luns=[Lun(1, ref)]))


def test_config_names_are_one_to_one():
    assert tgt.config_name('iqn.2026-11.org.example:a_b') != tgt.config_name('iqn.2026-11.org.example_a:b')
