# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lvm backend against real LVM (the VM tier: this needs
device-mapper, and fails without it, never skips): what the contract suite
does not cover. Delete with snapshots (refused, forced), volume_clear=zero
proven on the physical extents a deleted volume and a snapshot's
copy-on-write area held (and volume_clear=none proven to leave them, so the
check can fail), a full thin pool, a missing VG, revert by merge and its
idempotency, extension with and without snapshots."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os

import pytest

import contract as ct
import snapchain as sc
from ansible_collections.blockyard.storage.plugins.module_utils import volumes
from ansible_collections.blockyard.storage.plugins.module_utils.errors import (
    Conflict, InvalidInput, NotFound)

MIB = ct.MIB
PATTERN = b'\xab\xcd' * 2048       # 4 KiB, never zeros


@pytest.fixture(scope='module', params=['thick', 'thin'])
def lvm_root(request):
    try:
        root = ct.LvmRoot('lvm-%s' % request.param, request.param)
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield root
    root.close()


@pytest.fixture
def loc(lvm_root):
    location = lvm_root.fresh()
    yield location
    ct.remove(location)


@pytest.fixture
def thick_root():
    try:
        root = ct.LvmRoot('lvm-thick', 'thick')
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield root
    root.close()


def _lvs(loc, *fields):
    out = ct._lvm(['lvs', '-a', '--segments', '--reportformat', 'json', '--units', 'b', '--nosuffix', '-o',
                   ','.join(('lv_name',) + fields), loc.vg], 'lvs')
    rows = []
    for report in json.loads(out)['report']:
        rows.extend(report.get('seg', report.get('lv', [])))
    return rows


def _extents(loc, lv):
    """[(device, first PE, last PE)] of an LV's segments."""
    ranges = []
    for row in _lvs(loc, 'seg_pe_ranges'):
        if row['lv_name'].strip('[]') != lv:
            continue
        for part in row['seg_pe_ranges'].split():
            device, _sep, span = part.rpartition(':')
            first, _sep, last = span.partition('-')
            ranges.append((device, int(first), int(last)))
    assert ranges, 'no segments of %s' % lv
    return ranges


def _pe_start(loc):
    out = ct._lvm(['pvs', '--noheadings', '--units', 'b', '--nosuffix', '-o', 'pe_start', loc.root_device], 'pvs')
    return int(out.strip())


def _read_extents(loc, ranges, extent=4 * MIB):
    start = _pe_start(loc)
    data = b''
    with open(loc.root_device, 'rb') as handle:
        # what was written through the LV's own device is not in the PV's
        # page cache: drop what an earlier read left there
        os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        for _device, first, last in ranges:
            handle.seek(start + first * extent)
            data += handle.read((last - first + 1) * extent)
    return data


def _fill(path, length):
    fd = os.open(path, os.O_WRONLY)
    try:
        for offset in range(0, length, len(PATTERN)):
            os.pwrite(fd, PATTERN, offset)
        os.fsync(fd)
    finally:
        os.close(fd)


def _patterned(data):
    return data.count(PATTERN) * len(PATTERN)


# ------------------------------------------------------------------ delete with snapshots
def test_delete_with_snapshots_refused_then_forced(loc):
    ct.build(loc, 'V', snaps=2)
    listing = loc.listing()
    with pytest.raises(Conflict) as caught:
        ct.volume(loc, 'V', state='absent')
    assert 's1, s2' in caught.value.msg and 'force' in caught.value.msg
    assert loc.listing() == listing
    changed, result, _d = ct.volume(loc, 'V', state='absent', force=True)
    assert changed and result['volume']['state'] == 'absent'
    left = [row['lv_name'] for row in loc.lvs() if row['lv_name'].startswith(('volume-', 'volsnap-', 'volclone-'))]
    assert left == []


def test_foreign_lv_is_never_touched(loc):
    """An LV of another tool in the VG is not a volume, and survives."""
    ct._lvm(['lvcreate', '-y', '-L', '4m', '-n', 'other', loc.vg] if loc.params['lvm_type'] == 'thick' else
            ['lvcreate', '-y', '-V', '4m', '-T', '%s/%s-pool' % (loc.vg, loc.vg), '-n', 'other'], 'lvcreate')
    ct.volume(loc, 'V', size='4M')
    assert [v['name'] for v in ct.info(loc)['volumes']] == ['V']
    ct.volume(loc, 'V', state='absent')
    assert 'other' in [row['lv_name'] for row in loc.lvs()]


# ------------------------------------------------------------------ volume_clear
@pytest.mark.parametrize('clear,clear_size', [('zero', 0), ('zero', 4), ('none', 0)])
def test_volume_clear(thick_root, clear, clear_size):
    """The extents of a deleted thick volume and of a deleted snapshot's
    copy-on-write area read as zeros on the PV with volume_clear=zero (the
    first clear_size MiB of them), and still hold the data with none."""
    loc = thick_root.fresh('z')
    loc.root_device = thick_root.device
    try:
        opts = dict(volume_clear=clear, volume_clear_size=clear_size)
        ct.volume(loc, 'V', size='8M', **opts)
        path = ct.data_ref(loc, 'V').path
        _fill(path, 8 * MIB)
        ct.snapshot(loc, 'V', 's1', **opts)
        # the origin written again: its old data (the pattern) goes to the snapshot's copy-on-write area
        fd = os.open(path, os.O_WRONLY)
        try:
            for offset in range(0, 8 * MIB, 4096):
                os.pwrite(fd, b'\x11' * 4096, offset)
            os.fsync(fd)
        finally:
            os.close(fd)
        cow = _extents(loc, 'volsnap-V.s1')
        assert _patterned(_read_extents(loc, cow)) >= 8 * MIB - 4096
        ct.snapshot(loc, 'V', 's1', state='absent', **opts)
        after = _read_extents(loc, cow)
        if clear == 'none':
            assert _patterned(after) >= 8 * MIB - 4096
        elif clear_size:
            assert after[:clear_size * MIB].count(b'\0') == clear_size * MIB
            assert _patterned(after[clear_size * MIB:]) > 0
        else:
            assert after.count(b'\0') == len(after)

        _fill(path, 8 * MIB)
        extents = _extents(loc, 'volume-V')
        assert _patterned(_read_extents(loc, extents)) == 8 * MIB
        changed, _r, _d = ct.volume(loc, 'V', state='absent', **opts)
        assert changed
        after = _read_extents(loc, extents)
        if clear == 'none':
            assert _patterned(after) == 8 * MIB
        elif clear_size:
            assert after[:clear_size * MIB].count(b'\0') == clear_size * MIB
            assert _patterned(after[clear_size * MIB:]) == 8 * MIB - clear_size * MIB
        else:
            assert after.count(b'\0') == len(after)
        # whatever volume_clear says, a new thick volume on those extents reads zeros
        ct.volume(loc, 'W', size='8M', **opts)
        assert _extents(loc, 'volume-W') == extents
        assert not ct.zero_problems(loc, 'W', 0, 8 * MIB)
    finally:
        ct.remove(loc)


# ------------------------------------------------------------------ thin pool full, missing VG
def test_full_thin_pool(thick_root):
    loc = thick_root.fresh('f')
    try:
        ct._lvm(['lvcreate', '-y', '--type', 'thin-pool', '-L', '8m', '-n', 'small', loc.vg], 'lvcreate pool')
        # writes to the full pool fail at once instead of queueing for 60 s
        ct._lvm(['lvchange', '--errorwhenfull', 'y', '%s/small' % loc.vg], 'lvchange --errorwhenfull')
        params = dict(lvm_type='thin', thin_pool='small')
        ct.volume(loc, 'V', size='16M', **params)
        path = ct.data_ref(loc, 'V', params=ct.vparams(loc, 'V', **params)).path
        fd = os.open(path, os.O_WRONLY | os.O_DIRECT if hasattr(os, 'O_DIRECT') else os.O_WRONLY)
        import mmap
        block = mmap.mmap(-1, MIB)
        block.write(b'\x5a' * MIB)
        try:
            for offset in range(0, 16 * MIB, MIB):
                try:
                    os.pwrite(fd, block, offset)
                except OSError:
                    break
        finally:
            os.close(fd)
        pool = [r for r in loc.lvs() if r['lv_name'] == 'small'][0]
        assert float(pool['data_percent']) >= 100.0, pool
        listing = loc.listing()
        for call in (lambda: ct.volume(loc, 'N', size='4M', **params),
                     lambda: ct.snapshot(loc, 'V', 's1', **params)):
            with pytest.raises(Conflict) as caught:
                call()
            msg = caught.value.msg
            assert 'full' in msg and 'small' in msg and 'lvextend' in msg, msg
        assert loc.listing() == listing
        # a thick volume beside it is still possible
        changed, _r, _d = ct.volume(loc, 'K', size='4M', provisioning='thick', **params)
        assert changed
    finally:
        ct.remove(loc)


def test_missing_vg_and_bad_names(loc):
    params = ct.vparams(loc, 'V', size='4M', vg='bycnothere')
    with pytest.raises(NotFound) as caught:
        volumes.ensure_volume(params, False)
    msg = caught.value.msg
    assert 'bycnothere' in msg and 'vgs' in msg and 'lvm_volume_group' in msg
    with pytest.raises(InvalidInput) as caught:
        volumes.ensure_volume(ct.vparams(loc, 'V', size='4M', vg='-x'), False)
    assert 'vg' in caught.value.msg
    with pytest.raises(InvalidInput):
        volumes.ensure_volume(ct.vparams(loc, 'V', size='4M', thin_pool='snapshotpool'), False)
    with pytest.raises(InvalidInput):
        ct.volume(loc, 'a_tdata', size='4M')
    missing = ct.vparams(loc, 'V', size='4M', provisioning='thin', thin_pool='nopool')
    with pytest.raises(NotFound) as caught:
        volumes.ensure_volume(missing, False)
    assert 'nopool' in caught.value.msg and 'thin_pool' in caught.value.msg
    assert ct.info(loc)['volumes'] == []


# ------------------------------------------------------------------ revert
def test_revert_is_idempotent_and_keeps_the_snapshot(loc):
    timeline, points = ct.build(loc, 'V', snaps=2)
    changed, result, _d = ct.snapshot(loc, 'V', 's2', state='reverted')
    assert changed and result['snapshot']['state'] == 'reverted'
    assert ('merge' if loc.params['lvm_type'] == 'thick' else 'copy') in result['actions'][0]
    problems = ct.state_problems(loc, 'V', timeline, points, active_point=points[-1][1])
    assert not problems, problems
    for _i in range(2):
        changed, result, _d = ct.snapshot(loc, 'V', 's2', state='reverted')
        assert not changed and result['actions'] == []
    # the snapshot still holds its point in time after the volume moves on
    ct.write_next(loc, 'V', timeline)
    assert not ct.point_problems(loc, 'V', timeline, points[-1][1], 's2')
    with pytest.raises(Conflict):
        ct.snapshot(loc, 'V', 's1', state='reverted')


def test_revert_after_extend_zeroes_beyond_the_snapshot(loc):
    timeline, points = ct.build(loc, 'V', snaps=1)
    ct.volume(loc, 'V', size='8M')
    fd = os.open(ct.data_ref(loc, 'V').path, os.O_WRONLY)
    try:
        os.pwrite(fd, PATTERN, 6 * MIB)
        os.fsync(fd)
    finally:
        os.close(fd)
    changed, _r, _d = ct.snapshot(loc, 'V', 's1', state='reverted')
    assert changed
    desc = ct.info(loc, 'V')['volume']
    assert desc['size_bytes'] == 8 * MIB and [s['size_bytes'] for s in desc['snapshots']] == [4 * MIB]
    problems = ct.point_problems(loc, 'V', timeline, points[0][1]) + ct.zero_problems(loc, 'V', 4 * MIB, 4 * MIB)
    assert not problems, problems
    changed, _r, _d = ct.snapshot(loc, 'V', 's1', state='reverted')
    assert not changed


# ------------------------------------------------------------------ extend
def test_extend_with_and_without_snapshots(loc):
    timeline = sc.Timeline()
    ct.volume(loc, 'P', size='4M')
    ct.write_next(loc, 'P', timeline)
    changed, result, _d = ct.volume(loc, 'P', size='12M')
    assert changed and result['volume']['size_bytes'] == 12 * MIB
    assert not ct.point_problems(loc, 'P', timeline, timeline.now) + ct.zero_problems(loc, 'P', 4 * MIB, 8 * MIB)

    timeline, points = ct.build(loc, 'S', snaps=1)
    changed, result, _d = ct.volume(loc, 'S', size='8M')
    assert changed
    if loc.params['lvm_type'] == 'thick':
        assert 'inactive' in result['actions'][0]
    desc = ct.info(loc, 'S')['volume']
    assert desc['size_bytes'] == 8 * MIB and desc['snapshots'][0]['size_bytes'] == 4 * MIB
    problems = ct.state_problems(loc, 'S', timeline, points) + ct.zero_problems(loc, 'S', 4 * MIB, 4 * MIB)
    assert not problems, problems
    # extents round up: 9M is 12M, and asking 10M later changes nothing
    changed, result, _d = ct.volume(loc, 'S', size='9M')
    assert changed and result['volume']['size_bytes'] == 12 * MIB
    changed, _r, _d = ct.volume(loc, 'S', size='10M')
    assert not changed
    with pytest.raises(Conflict):
        ct.volume(loc, 'S', size='4M')
