# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The five-step example of Cinder's GlusterFS driver documentation
(reference/000), on real files: exact .info bytes after every step, and the
data of every remaining snapshot (through a volume created from it) and of
the live volume."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

import pytest

import snapchain as sc
from ansible_collections.blockyard.storage.plugins.module_utils import qcow2


@pytest.mark.parametrize('base_fmt', ['raw', 'qcow2'])
def test_five_step(vdir, base_fmt):
    sc.five_step(vdir, base_fmt)


def test_five_step_info_bytes_are_cinders(vdir):
    """The .info is byte for byte what Cinder's json.dump(indent=1,
    sort_keys=True) writes, so a Cinder driver can read ours and we theirs."""
    sc.volume(vdir, '1234', size='4M')
    sc.snapshot(vdir, '1234', 'aaaa')
    sc.snapshot(vdir, '1234', 'bbbb')
    assert sc.info_bytes(vdir, '1234') == (
        b'{\n "aaaa": "volume-1234.aaaa",\n "active": "volume-1234.bbbb",\n "bbbb": "volume-1234.bbbb"\n}')
    sc.snapshot(vdir, '1234', 'aaaa', state='absent')
    assert sc.info_bytes(vdir, '1234') == b'{\n "active": "volume-1234.bbbb",\n "bbbb": "volume-1234.bbbb"\n}'
    sc.snapshot(vdir, '1234', 'bbbb', state='absent')
    assert sc.info_bytes(vdir, '1234') == b'{\n "active": "volume-1234"\n}'


def test_overlay_header(vdir):
    """The overlay records its backing file as a bare name, with an explicit
    backing format, and is qcow2 v3 (compat 1.1)."""
    sc.volume(vdir, '1234', size='4M')
    sc.snapshot(vdir, '1234', 'aaaa')
    sc.snapshot(vdir, '1234', 'bbbb')
    a = qcow2.read_header(os.path.join(vdir, 'volume-1234.aaaa'))
    b = qcow2.read_header(os.path.join(vdir, 'volume-1234.bbbb'))
    assert (a.backing_file, a.backing_format, a.version) == ('volume-1234', 'raw', 3)
    assert (b.backing_file, b.backing_format, b.version) == ('volume-1234.aaaa', 'qcow2', 3)
