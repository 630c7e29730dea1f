# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Snapshot deletion in every position: chains of 1 to 5 snapshots deleted in
every order (1! + 2! + 3! + 4! + 5! = 153 orders per base format), each step
checked by data patterns; and the other snapshot operations: idempotency,
check mode, revert, clone, create from snapshot, extend with snapshots,
stale overlays, unknown snapshot ids."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import itertools
import os
import subprocess

import pytest

import snapchain as sc
from ansible_collections.blockyard.storage.plugins.module_utils import qcow2
from ansible_collections.blockyard.storage.plugins.module_utils.errors import Conflict, StorageError

VOL = 'X'
MAX_CHAIN = 5


def _orders():
    for n in range(1, MAX_CHAIN + 1):
        names = ['s%d' % i for i in range(n)]
        for order in itertools.permutations(names):
            yield n, order


ORDERS = list(_orders())
assert len(ORDERS) == 153


@pytest.fixture(scope='module')
def templates(fast_root):
    """A volume with a chain of n snapshots, per (base format, n), built once
    and copied for each order: {key: (directory, timeline writes, points)}."""
    cache = {}

    def get(base_fmt, n):
        key = (base_fmt, n)
        if key not in cache:
            directory = os.path.join(fast_root, '%s-%d' % key)
            os.mkdir(directory)
            timeline = sc.Timeline()
            sc.volume(directory, VOL, size='4M', format=base_fmt)
            timeline.write(*sc.active_view(directory, VOL, base_fmt))
            points = []
            for i in range(n):
                snap = 's%d' % i
                changed, _result, _diff = sc.snapshot(directory, VOL, snap)
                assert changed
                points.append((snap, timeline.now))
                timeline.write(*sc.active_view(directory, VOL, base_fmt))
            sc.check_volume_state(directory, VOL, timeline, points, base_fmt)
            cache[key] = (directory, list(timeline.writes), points)
        return cache[key]
    return get


def _copy_template(template, directory):
    subprocess.check_call(['cp', '-a', '--sparse=always', template + '/.', directory])


@pytest.mark.parametrize('base_fmt', ['raw', 'qcow2'])
@pytest.mark.parametrize('n,order', ORDERS, ids=['%d:%s' % (n, '-'.join(o)) for n, o in ORDERS])
def test_delete_order(templates, fast_vdir, base_fmt, n, order):
    vdir = fast_vdir
    template, writes, points = templates(base_fmt, n)
    _copy_template(template, vdir)
    timeline = sc.Timeline()
    timeline.writes = list(writes)
    remaining = list(points)
    for snap in order:
        before = dict(sc.read_info(vdir, VOL))
        assert before == sc.expected_info(VOL, [s for s, _p in remaining])
        was_active = before['active'] == sc.overlay_file(VOL, snap)
        names_before = [s for s, _p in remaining]
        changed, result, diff = sc.snapshot(vdir, VOL, snap, state='absent')
        assert changed and result['snapshot']['state'] == 'absent'
        remaining = [p for p in remaining if p[0] != snap]
        want = sc.expected_info(VOL, [s for s, _p in remaining])
        assert diff['before'] == {'snapshots': names_before}
        assert diff['after'] == {'snapshots': [s for s, _p in remaining]}
        sc.assert_info(vdir, VOL, want)
        joined = ' | '.join(result['actions'])
        assert 'commit %s into' % sc.overlay_file(VOL, snap) in joined, joined
        if not was_active:
            assert 're-point' in joined, joined
        sc.check_volume_state(vdir, VOL, timeline, remaining, base_fmt)
    assert sc.read_info(vdir, VOL) == {'active': sc.base_file(VOL)}
    vol = sc.load(vdir, VOL)
    assert vol.active == sc.base_file(VOL) and vol.active_format == base_fmt and len(vol.chain) == 1


def test_pattern_checks_catch_a_mismatch(vdir):
    """The checker itself: a wrong expectation is reported (so a passing
    check means the data is right)."""
    sc.volume(vdir, VOL, size='4M')
    timeline = sc.Timeline()
    timeline.write(*sc.active_view(vdir, VOL))
    path = os.path.join(vdir, sc.base_file(VOL))
    assert not timeline.problems(path, 'raw', 1)
    assert len(timeline.problems(path, 'raw', 0)) == 2
    assert not sc.multi_problems([('v', path, 'raw', timeline.expectations(1))])
    assert len(sc.multi_problems([('v', path, 'raw', timeline.expectations(1)),
                                  ('w', path, 'raw', timeline.expectations(0))])) == 2
    assert sc.read_bytes(path, 'raw', 0, 32) == bytes([0x41]) * 32


# ------------------------------------------------------------------ idempotency
def test_idempotent_create_and_delete(vdir):
    sc.volume(vdir, VOL, size='4M')
    changed, _r, _d = sc.snapshot(vdir, VOL, 'a')
    assert changed
    before = sc.fingerprint(vdir)
    changed, result, diff = sc.snapshot(vdir, VOL, 'a')
    assert not changed and result['actions'] == [] and diff['before'] == diff['after']
    assert result['snapshot']['details']['overlay'] == sc.overlay_file(VOL, 'a')
    assert result['snapshot']['details']['snapshot_map'] == sc.expected_info(VOL, ['a'])
    assert diff['after'] == {'snapshots': ['a']}
    assert sc.fingerprint(vdir) == before
    changed, _r, _d = sc.snapshot(vdir, VOL, 'a', state='absent')
    assert changed
    before = sc.fingerprint(vdir)
    changed, result, diff = sc.snapshot(vdir, VOL, 'a', state='absent')
    assert not changed and result['actions'] == [] and result['snapshot']['state'] == 'absent'
    assert sc.fingerprint(vdir) == before


def test_unknown_snapshot_id_is_success_unchanged(vdir):
    sc.volume(vdir, VOL, size='4M')
    sc.snapshot(vdir, VOL, 'a')
    before = sc.fingerprint(vdir)
    changed, result, diff = sc.snapshot(vdir, VOL, 'never-taken', state='absent')
    assert not changed and result['actions'] == []
    assert diff['before'] == diff['after'] == {'snapshots': ['a']}
    sc.assert_info(vdir, VOL, sc.expected_info(VOL, ['a']))
    assert sc.fingerprint(vdir) == before
    # a volume without any .info at all
    sc.volume(vdir, 'plain', size='4M')
    changed, _result, _diff = sc.snapshot(vdir, 'plain', 'x', state='absent')
    assert not changed and not os.path.exists(sc.info_path(vdir, 'plain'))


# ------------------------------------------------------------------ check mode
def _check_mode_unchanged(directory, call):
    before = sc.fingerprint(directory)
    changed, result, diff = call()
    assert sc.fingerprint(directory) == before, 'check mode changed the directory'
    return changed, result, diff


def test_check_mode_changes_nothing(vdir):
    # volume create: nothing at all appears, not even a lock file
    changed, result, diff = _check_mode_unchanged(vdir, lambda: sc.volume(vdir, VOL, size='4M', check_mode=True))
    assert changed and result['actions'] and os.listdir(vdir) == []
    assert diff['after']['state'] == 'present' and diff['before'] == {'state': 'absent'}
    timeline = sc.Timeline()
    sc.volume(vdir, VOL, size='4M')
    timeline.write(*sc.active_view(vdir, VOL))
    sc.snapshot(vdir, VOL, 'a')
    a = timeline.now
    timeline.write(*sc.active_view(vdir, VOL))
    sc.snapshot(vdir, VOL, 'b')
    b = timeline.now
    timeline.write(*sc.active_view(vdir, VOL))
    os.unlink(os.path.join(vdir, 'volume-%s.lock' % VOL))    # nobody holds it: prove none is made
    # (call, diff after, (snapshot, state) whose predicted .info map is checked, that map)
    cases = [
        (lambda: sc.snapshot(vdir, VOL, 'c', check_mode=True), {'snapshots': ['a', 'b', 'c']},
         ('c', 'present'), sc.expected_info(VOL, ['a', 'b', 'c'])),
        (lambda: sc.snapshot(vdir, VOL, 'b', state='absent', check_mode=True), {'snapshots': ['a']},
         ('b', 'absent'), sc.expected_info(VOL, ['a'])),
        (lambda: sc.snapshot(vdir, VOL, 'a', state='absent', check_mode=True), {'snapshots': ['b']},
         ('a', 'absent'), {'active': sc.overlay_file(VOL, 'b'), 'b': sc.overlay_file(VOL, 'b')}),
        (lambda: sc.snapshot(vdir, VOL, 'b', state='reverted', check_mode=True),
         {'snapshots': ['a', 'b'], 'data_since_snapshot': 'discarded'},
         ('b', 'reverted'), sc.expected_info(VOL, ['a', 'b'])),
        (lambda: sc.volume(vdir, VOL, size='8M', check_mode=True), None, None, None),
        (lambda: sc.volume(vdir, 'copy', source_volume=VOL, check_mode=True), None, None, None),
        (lambda: sc.volume(vdir, 'fromsnap', source_volume=VOL, source_snapshot='a', check_mode=True), None,
         None, None),
        (lambda: sc.volume(vdir, VOL, state='absent', force=True, check_mode=True), None, None, None),
    ]
    for call, after, planned, mapping in cases:
        changed, result, diff = _check_mode_unchanged(vdir, call)
        assert changed and result['actions'], result
        if after is not None:
            assert diff['after'] == after, (result['actions'], diff)
        if planned is not None:
            if planned[1] != 'absent':
                assert result['snapshot']['details']['snapshot_map'] == mapping, result
            # the map the plan would write (the check-mode result is that plan's)
            assert _check_mode_unchanged(vdir, lambda: (None, None, sc.predicted_map(vdir, VOL, *planned)))[2] \
                == mapping
        sc.assert_info(vdir, VOL, sc.expected_info(VOL, ['a', 'b']))
    assert 'volume-%s.lock' % VOL not in os.listdir(vdir)
    # the data is untouched too
    assert not sc.view_problems(vdir, VOL, timeline, {'a': a, 'b': b, None: timeline.now})


# ------------------------------------------------------------------ revert
@pytest.mark.parametrize('base_fmt', ['raw', 'qcow2'])
def test_revert(vdir, base_fmt):
    sc.revert_scenario(vdir, base_fmt)


def test_revert_unknown_snapshot_refused(vdir):
    sc.volume(vdir, VOL, size='4M')
    with pytest.raises(StorageError) as err:
        sc.snapshot(vdir, VOL, 'nope', state='reverted')
    assert 'nope' in err.value.msg


# ------------------------------------------------------------------ clone
@pytest.mark.parametrize('base_fmt', ['raw', 'qcow2'])
def test_clone_with_snapshots(vdir, base_fmt):
    sc.clone_scenario(vdir, base_fmt)


@pytest.mark.parametrize('dest_fmt', ['raw', 'qcow2'])
def test_clone_plain_volume(vdir, dest_fmt):
    """A volume without snapshots (full copy here: this filesystem does not
    reflink), into either format; the source is left exactly as it was."""
    timeline = sc.Timeline()
    sc.volume(vdir, 'src', size='4M')
    timeline.write(*sc.active_view(vdir, 'src'))
    before = sc.fingerprint(os.path.join(vdir, 'volume-src'), os.path.join(vdir, 'volume-src.meta'))
    changed, result, _diff = sc.volume(vdir, 'dst', source_volume='src', format=dest_fmt)
    assert changed and result['volume']['format'] == dest_fmt and result['volume']['size_bytes'] == sc.VOL_SIZE
    assert sc.fingerprint(os.path.join(vdir, 'volume-src'), os.path.join(vdir, 'volume-src.meta')) == before
    assert not os.path.exists(sc.info_path(vdir, 'src')) or sc.read_info(vdir, 'src') == {'active': 'volume-src'}
    assert not [f for f in os.listdir(vdir) if 'tmp-snap' in f or f.endswith('.part') or 'journal' in f]
    problems = timeline.problems(os.path.join(vdir, 'volume-dst'), dest_fmt, timeline.now)
    assert not problems, problems
    # the copy is independent: writing to it leaves the source alone
    sc.write_patterns(os.path.join(vdir, 'volume-dst'), dest_fmt, [(0xee, 0, sc.SLOT)])
    assert not timeline.problems(os.path.join(vdir, 'volume-src'), 'raw', timeline.now)


# ------------------------------------------------------------------ create from snapshot
def test_create_from_snapshot_larger(vdir):
    timeline = sc.Timeline()
    sc.volume(vdir, VOL, size='4M')
    timeline.write(*sc.active_view(vdir, VOL))
    sc.snapshot(vdir, VOL, 'a')
    a = timeline.now
    timeline.write(*sc.active_view(vdir, VOL))
    sc.snapshot(vdir, VOL, 'b')
    timeline.write(*sc.active_view(vdir, VOL))
    info_before = sc.info_bytes(vdir, VOL)
    changed, result, _diff = sc.volume(vdir, 'big', source_volume=VOL, source_snapshot='a', size='8M')
    assert changed and result['volume']['size_bytes'] == 8 * sc.MIB
    path = os.path.join(vdir, 'volume-big')
    assert os.path.getsize(path) == 8 * sc.MIB
    assert not timeline.problems(path, 'raw', a)
    assert not sc.pattern_problems(path, 'raw', [(0, 4 * sc.MIB, 4 * sc.MIB)])
    assert sc.info_bytes(vdir, VOL) == info_before
    # qcow2 copy, grown too
    changed, result, _diff = sc.volume(vdir, 'bigq', source_volume=VOL, source_snapshot='a', size='6M',
                                       format='qcow2')
    assert changed and qcow2.read_header(os.path.join(vdir, 'volume-bigq')).size == 6 * sc.MIB
    assert not timeline.problems(os.path.join(vdir, 'volume-bigq'), 'qcow2', a)
    # smaller than the snapshot: refused, nothing made
    before = sc.fingerprint(vdir)
    with pytest.raises(Conflict):
        sc.volume(vdir, 'small', source_volume=VOL, source_snapshot='a', size='2M')
    assert sc.fingerprint(vdir) == before
    # unknown snapshot: refused
    with pytest.raises(StorageError):
        sc.volume(vdir, 'none', source_volume=VOL, source_snapshot='zzz')
    assert sc.volume_files(vdir, 'none') == []


# ------------------------------------------------------------------ extend
@pytest.mark.parametrize('base_fmt', ['raw', 'qcow2'])
def test_extend_with_snapshots_then_delete(vdir, base_fmt):
    """Extend resizes the active overlay only; deleting the snapshots then
    commits the larger overlay into the smaller base, which grows."""
    timeline = sc.Timeline()
    sc.volume(vdir, VOL, size='4M', format=base_fmt)
    timeline.write(*sc.active_view(vdir, VOL, base_fmt))
    sc.snapshot(vdir, VOL, 'a')
    a = timeline.now
    timeline.write(*sc.active_view(vdir, VOL, base_fmt))
    changed, result, _diff = sc.volume(vdir, VOL, size='8M')
    assert changed and result['volume']['size_bytes'] == 8 * sc.MIB
    assert qcow2.read_header(os.path.join(vdir, sc.overlay_file(VOL, 'a'))).size == 8 * sc.MIB
    base_path = os.path.join(vdir, sc.base_file(VOL))
    base_size = os.path.getsize(base_path) if base_fmt == 'raw' else qcow2.read_header(base_path).size
    assert base_size == 4 * sc.MIB, 'the base (snapshot a) must keep its size'
    changed, _result, _diff = sc.volume(vdir, VOL, size='8M')
    assert not changed
    # data beyond the old end
    high = [(0xd1, 6 * sc.MIB, sc.SLOT)]
    sc.write_patterns(*sc.active_view(vdir, VOL, base_fmt), writes=high)
    timeline.write(*sc.active_view(vdir, VOL, base_fmt))
    # the snapshot taken before the extension keeps its size
    _c, result, _d = sc.snapshot(vdir, VOL, 'a')
    assert result['snapshot']['size_bytes'] == 4 * sc.MIB
    changed, result, _diff = sc.volume(vdir, 'olda', source_volume=VOL, source_snapshot='a')
    assert result['volume']['size_bytes'] == 4 * sc.MIB
    assert os.path.getsize(os.path.join(vdir, 'volume-olda')) == 4 * sc.MIB
    assert not timeline.problems(os.path.join(vdir, 'volume-olda'), 'raw', a)
    sc.snapshot(vdir, VOL, 'b')
    b = timeline.now
    timeline.write(*sc.active_view(vdir, VOL, base_fmt))
    sc.snapshot(vdir, VOL, 'a', state='absent')       # middle: commit a's overlay (8M) into the 4M base
    sc.check_volume_state(vdir, VOL, timeline, [('b', b)], base_fmt)
    assert not sc.pattern_problems(*sc.snapshot_view(vdir, VOL, 'b'), expectations=high)
    sc.snapshot(vdir, VOL, 'b', state='absent')       # active: the base becomes active, 8M
    sc.check_volume_state(vdir, VOL, timeline, [], base_fmt)
    base_size = os.path.getsize(base_path) if base_fmt == 'raw' else qcow2.read_header(base_path).size
    assert base_size == 8 * sc.MIB
    assert not sc.pattern_problems(base_path, base_fmt, high)
    desc = sc.info_of(vdir, VOL)
    assert desc['size_bytes'] == desc['details']['virtual_bytes'] == 8 * sc.MIB


# ------------------------------------------------------------------ stale overlays
def test_stale_overlay_without_backing_is_dropped(vdir):
    """A .info entry naming a qcow2 file with no backing file that is not in
    the chain (left by an old crash of a Cinder driver) is dropped with its
    file; the real snapshots keep their data."""
    timeline = sc.Timeline()
    sc.volume(vdir, VOL, size='4M')
    timeline.write(*sc.active_view(vdir, VOL))
    sc.snapshot(vdir, VOL, 'a')
    a = timeline.now
    timeline.write(*sc.active_view(vdir, VOL))
    stale = os.path.join(vdir, sc.overlay_file(VOL, 'old'))
    subprocess.check_call(['qemu-img', 'create', '-q', '-f', 'qcow2', stale, '4M'])
    info = sc.read_info(vdir, VOL)
    info['old'] = sc.overlay_file(VOL, 'old')
    with open(sc.info_path(vdir, VOL), 'wb') as handle:
        handle.write(sc.cinder_info(info))
    desc = sc.info_of(vdir, VOL)
    assert [s for s in desc['snapshots'] if s['name'] == 'old'][0]['details']['stale'] is True
    with pytest.raises(StorageError):   # its point in time is gone: no copy of it
        sc.volume(vdir, 'fromold', source_volume=VOL, source_snapshot='old')
    changed, result, diff = sc.snapshot(vdir, VOL, 'old', state='absent')
    assert changed and any('stale' in a for a in result['actions'])
    assert diff['before'] == {'snapshots': ['a', 'old']} and diff['after'] == {'snapshots': ['a']}
    sc.assert_info(vdir, VOL, sc.expected_info(VOL, ['a']))
    assert not os.path.exists(stale)
    sc.check_volume_state(vdir, VOL, timeline, [('a', a)])
    changed, _result, _diff = sc.snapshot(vdir, VOL, 'old', state='absent')
    assert not changed
