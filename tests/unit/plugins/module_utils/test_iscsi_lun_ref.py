# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""iscsi_target's LUN paths: the only links followed are root's stable
names of block devices under /dev (an LV's /dev/<vg>/<lv>); the VM tier
exports one for real (tests/vm/playbooks/20_lio_attach.yml)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

import pytest

from ansible_collections.blockyard.storage.plugins.module_utils import iscsi
from ansible_collections.blockyard.storage.plugins.module_utils.errors import InvalidInput


def test_a_link_outside_dev_is_refused(tmp_path):
    target = tmp_path / 'data'
    target.write_bytes(b'x' * 512)
    link = tmp_path / 'link'
    os.symlink(str(target), str(link))
    with pytest.raises(InvalidInput) as err:
        iscsi.lun_ref(str(link), 'iqn.2026-11.org.example:t', 1)
    assert 'is a symbolic link' in err.value.msg and '/dev/<vg>/<lv>' in err.value.msg
    assert iscsi.lun_ref(str(target), 'iqn.2026-11.org.example:t', 1).kind == 'file'


@pytest.mark.parametrize('path', ['/dev/stdin', '/dev/fd/0', '/dev/../dev/stdin', '/devx/a'])
def test_dev_links_that_are_not_block_device_names_are_not_followed(path):
    assert iscsi._dev_link(path) is None


def test_a_dev_link_to_a_block_device_is_followed_and_keeps_its_name(monkeypatch, tmp_path):
    import stat as stat_mod

    class St:
        st_mode = stat_mod.S_IFBLK | 0o660
        st_uid = 0

    class Dir:
        st_mode = stat_mod.S_IFDIR | 0o755
        st_uid = 0

    monkeypatch.setattr(iscsi.os.path, 'realpath', lambda p: '/dev/dm-3')
    monkeypatch.setattr(iscsi.os, 'stat', lambda p: St())
    monkeypatch.setattr(iscsi.os, 'lstat', lambda p: Dir())
    assert iscsi._dev_link('/dev/vg0/volume-a') == '/dev/dm-3'
    # a directory others may write is not root's stable name
    Dir.st_mode = stat_mod.S_IFDIR | 0o777
    assert iscsi._dev_link('/dev/vg0/volume-a') is None
    Dir.st_mode, Dir.st_uid = stat_mod.S_IFDIR | 0o755, 1000
    assert iscsi._dev_link('/dev/vg0/volume-a') is None
    # a link to something that is not a block device
    Dir.st_uid, St.st_mode = 0, stat_mod.S_IFREG | 0o644
    assert iscsi._dev_link('/dev/vg0/volume-a') is None
