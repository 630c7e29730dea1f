# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Clones on XFS with reflink (a loop-mounted image made with
`mkfs.xfs -m reflink=1`): a clone of a raw volume shares its extents with
the source (filefrag shows them shared, free space barely moves) and holds
the same data; writing to either leaves the other alone. Where a reflink does
not apply (a source with snapshots, a thick destination) the clone is a full
copy with the same data."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import filecmp
import os
import shutil
import subprocess
import tempfile

import pytest

import snapchain as sc
from ansible_collections.blockyard.storage.plugins.module_utils import fileio

SIZE_MIB = 64


def _run(argv):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)


@pytest.fixture(scope='module')
def xfs_dir():
    if os.geteuid() != 0:
        pytest.fail('the reflink tests need root (loop mount)', pytrace=False)
    work = tempfile.mkdtemp(prefix='blockyard-xfs-')
    image = os.path.join(work, 'xfs.img')
    mount_point = os.path.join(work, 'mnt')
    os.mkdir(mount_point)
    try:
        with open(image, 'wb') as handle:
            handle.truncate(512 * 1024 * 1024)
        res = _run(['mkfs.xfs', '-q', '-m', 'reflink=1', image])
        if res.returncode != 0:
            pytest.fail('mkfs.xfs -m reflink=1 failed: %s' % res.stdout, pytrace=False)
        res = _run(['mount', '-o', 'loop', image, mount_point])
        if res.returncode != 0:
            pytest.fail('cannot loop-mount the XFS image: %s' % res.stdout, pytrace=False)
        assert fileio.fs_type(mount_point) == 'xfs'
        yield os.path.realpath(mount_point)
    finally:
        if os.path.ismount(mount_point):
            if _run(['umount', mount_point]).returncode != 0:
                _run(['umount', '-l', mount_point])
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def xdir(xfs_dir):
    path = tempfile.mkdtemp(prefix='t-', dir=xfs_dir)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def free_bytes(path):
    os.sync()
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def extent_flags(path):
    """filefrag -v: the flags of each extent line."""
    res = _run(['filefrag', '-v', path])
    assert res.returncode == 0, res.stdout
    return [line.rsplit(':', 1)[-1].strip() for line in res.stdout.splitlines()
            if line.strip() and line.strip()[0].isdigit() and '..' in line]


def make_filled(directory, name):
    """A 64 MiB thick raw volume, written all over (real extents)."""
    sc.volume(directory, name, size='%dM' % SIZE_MIB, provisioning='thick')
    path = os.path.join(directory, 'volume-%s' % name)
    sc.write_patterns(path, 'raw', [(0x5a, 0, SIZE_MIB * sc.MIB), (0x11, 0, sc.SLOT),
                                    (0x22, (SIZE_MIB - 1) * sc.MIB, sc.SLOT)])
    os.sync()
    return path


def test_clone_is_a_reflink(xdir):
    src = make_filled(xdir, 'src')
    meta = sc.fingerprint(os.path.join(xdir, 'volume-src.meta'))
    assert not any('shared' in f for f in extent_flags(src))
    free_before = free_bytes(xdir)
    changed, result, _diff = sc.volume(xdir, 'dst', source_volume='src')
    assert changed and any('reflink' in a for a in result['actions']), result['actions']
    assert not any('tmp-snap' in a for a in result['actions'])
    dst = os.path.join(xdir, 'volume-dst')
    used = free_before - free_bytes(xdir)
    assert used < 4 * sc.MIB, 'a reflink clone of %d MiB used %d bytes' % (SIZE_MIB, used)
    flags = extent_flags(dst)
    assert flags and all('shared' in f for f in flags), flags
    assert all('shared' in f for f in extent_flags(src))
    assert filecmp.cmp(src, dst, shallow=False)
    assert result['volume']['size_bytes'] == SIZE_MIB * sc.MIB
    assert sc.fingerprint(os.path.join(xdir, 'volume-src.meta')) == meta
    assert not os.path.exists(sc.info_path(xdir, 'src'))
    # copy on write: the two stay independent
    sc.write_patterns(dst, 'raw', [(0x77, 0, sc.SLOT)])
    assert not sc.pattern_problems(src, 'raw', [(0x11, 0, sc.SLOT), (0x5a, sc.SLOT, sc.MIB)])
    assert not sc.pattern_problems(dst, 'raw', [(0x77, 0, sc.SLOT), (0x5a, sc.SLOT, sc.MIB)])
    changed, _result, _diff = sc.volume(xdir, 'dst', source_volume='src')
    assert not changed


def test_full_copy_where_a_reflink_does_not_apply(xdir):
    src = make_filled(xdir, 'src')
    # a thick destination: its own blocks
    free_before = free_bytes(xdir)
    changed, result, _diff = sc.volume(xdir, 'thick', source_volume='src', provisioning='thick')
    assert changed and not any('reflink' in a for a in result['actions'])
    thick = os.path.join(xdir, 'volume-thick')
    assert free_before - free_bytes(xdir) >= SIZE_MIB * sc.MIB
    assert not any('shared' in f for f in extent_flags(thick))
    assert filecmp.cmp(src, thick, shallow=False)
    # a source with snapshots: through the temporary snapshot
    sc.snapshot(xdir, 'src', 's1')
    info = sc.info_bytes(xdir, 'src')
    changed, result, _diff = sc.volume(xdir, 'fromchain', source_volume='src')
    assert changed and any('tmp-snap-fromchain' in a for a in result['actions'])
    assert sc.info_bytes(xdir, 'src') == info
    assert not [f for f in os.listdir(xdir) if 'tmp-snap' in f]
    assert filecmp.cmp(src, os.path.join(xdir, 'volume-fromchain'), shallow=False)
