# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backend contract suite: every backend location runs the same
scenarios through the neutral API (volumes.ensure_volume / ensure_snapshot /
volume_info and the contract of backends/base.py), with the data of every
point in time read back through the backend's DataRef.

Locations: the file backend on a plain directory (tmpfs), on XFS with
reflink (a loop mount) and on a real GlusterFS FUSE mount, rbd on the Ceph
lab, and (in the VM tier, which has device-mapper) lvm-thick and lvm-thin on
a VG of their own per test; env BLOCKYARD_CONTRACT_LOCATIONS (a comma list of
contract.ROOTS labels) picks them, the first four by default.

Cases: create/grow/delete, snapshots deleted in every order, volumes from
snapshots, clones, revert, check mode writes nothing (and predicts the real
run), a re-run changes nothing, the keys every backend returns, a missing
capability is errors.Unsupported, and a kill -9 at every checkpoint of
create, clone, snapshot create and snapshot delete converges on the next run.
A copy across two locations (two shares) is at the end."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import itertools
import os
import re
import shutil
import signal
import subprocess
import tempfile

import pytest

import contract as ct
import snapchain as sc
from ansible_collections.blockyard.storage.plugins.module_utils import backends, volumes
from ansible_collections.blockyard.storage.plugins.module_utils.backends.base import CAPABILITIES
from ansible_collections.blockyard.storage.plugins.module_utils.errors import (
    Conflict, StorageError, Unsupported)

DEFAULT_LOCATIONS = ['file-dir', 'file-xfs', 'file-gluster', 'rbd']
# the VM tier runs the LVM locations (BLOCKYARD_CONTRACT_LOCATIONS=lvm-thick,lvm-thin)
LOCATIONS = [x.strip() for x in os.environ.get('BLOCKYARD_CONTRACT_LOCATIONS', '').split(',')
             if x.strip()] or DEFAULT_LOCATIONS
SIZE = ct.SIZE


@pytest.fixture(scope='module', params=LOCATIONS)
def backend_location(request):
    """The root of one backend location kind (module-scoped: the XFS image
    and the GlusterFS volume are made once)."""
    try:
        root = ct.ROOTS[request.param]()
    except RuntimeError as exc:
        pytest.fail('%s: %s' % (request.param, exc), pytrace=False)
    yield root
    root.close()


@pytest.fixture
def loc(backend_location):
    """A fresh, empty location of the param's kind."""
    location = backend_location.fresh()
    yield location
    ct.remove(location)


def kind_of(loc):
    return backends.get(loc.params['backend'])


# ------------------------------------------------------------------ create / grow / delete
@pytest.mark.parametrize('fmt', ['raw', 'qcow2'])
def test_create_grow_delete(loc, fmt):
    cls = kind_of(loc)
    if fmt == 'qcow2' and 'qcow2' not in cls.capabilities:
        with pytest.raises(Unsupported):
            ct.volume(loc, 'V', size='4M', format=fmt)
        return
    changed, result, diff = ct.volume(loc, 'V', size='4M', format=fmt)
    assert changed and result['actions']
    vol = result['volume']
    assert (vol['name'], vol['backend'], vol['location'], vol['state'], vol['size_bytes'], vol['format'],
            vol['provisioning'], vol['managed'], vol['snapshots']) == \
        ('V', cls.kind, loc.location, 'present', SIZE, fmt, ct.default_provisioning(loc), True, [])
    assert result['location'] == loc.location
    assert diff['before'] == {'state': 'absent'}
    assert diff['after'] == {'state': 'present', 'format': fmt, 'provisioning': ct.default_provisioning(loc),
                             'size_bytes': SIZE,
                             'managed': True, 'snapshots': []}
    assert not ct.zero_problems(loc, 'V', 0, SIZE)
    changed, result, _d = ct.volume(loc, 'V', size='4M', format=fmt)
    assert not changed and result['actions'] == []

    timeline = sc.Timeline()
    ct.write_next(loc, 'V', timeline)
    ct.write_next(loc, 'V', timeline)
    changed, result, diff = ct.volume(loc, 'V', size='8M')
    assert changed and result['volume']['size_bytes'] == 8 * ct.MIB
    assert diff['before']['size_bytes'] == SIZE and diff['after']['size_bytes'] == 8 * ct.MIB
    assert ct.data_ref(loc, 'V').size == 8 * ct.MIB
    problems = ct.point_problems(loc, 'V', timeline, timeline.now) + ct.zero_problems(loc, 'V', SIZE, SIZE)
    assert not problems, problems
    changed, _r, _d = ct.volume(loc, 'V', size='8M')
    assert not changed
    # a smaller size is refused and changes nothing
    listing = loc.listing()
    with pytest.raises(StorageError):
        ct.volume(loc, 'V', size='4M')
    assert loc.listing() == listing

    changed, result, diff = ct.volume(loc, 'V', state='absent')
    assert changed and result['volume'] == {'name': 'V', 'backend': cls.kind, 'location': loc.location,
                                            'state': 'absent'}
    assert diff['after'] == {'state': 'absent'}
    assert ct.info(loc)['volumes'] == []
    changed, result, _d = ct.volume(loc, 'V', state='absent')
    assert not changed and result['actions'] == []


def test_thick_volume(loc):
    cls = kind_of(loc)
    if 'thick' not in cls.capabilities:
        with pytest.raises(Unsupported):
            ct.volume(loc, 'T', size='4M', provisioning='thick')
        return
    changed, result, _d = ct.volume(loc, 'T', size='4M', provisioning='thick')
    assert changed and result['volume']['provisioning'] == 'thick'
    assert result['volume']['allocated_bytes'] >= SIZE
    assert not ct.zero_problems(loc, 'T', 0, SIZE)


def test_delete_with_snapshots_needs_force(loc):
    ct.build(loc, 'V', snaps=2)
    listing = loc.listing()
    with pytest.raises(Conflict):
        ct.volume(loc, 'V', state='absent')
    assert loc.listing() == listing
    changed, _r, _d = ct.volume(loc, 'V', state='absent', force=True)
    assert changed
    assert ct.info(loc)['volumes'] == []


# ------------------------------------------------------------------ snapshots
@pytest.mark.parametrize('order', list(itertools.permutations(['s1', 's2', 's3'])),
                         ids='-'.join)
def test_snapshot_delete_orders(loc, order):
    timeline, points = ct.build(loc, 'V', snaps=3)
    problems = ct.state_problems(loc, 'V', timeline, points)
    remaining = list(points)
    for snap in order:
        changed, result, diff = ct.snapshot(loc, 'V', snap, state='absent')
        assert changed and result['snapshot']['state'] == 'absent', result
        assert diff['before']['snapshots'] == [s for s, _p in remaining]
        remaining = [p for p in remaining if p[0] != snap]
        assert diff['after']['snapshots'] == [s for s, _p in remaining]
        problems += ['after deleting %s: %s' % (snap, p) for p in ct.state_problems(loc, 'V', timeline, remaining)]
        changed, _r, _d = ct.snapshot(loc, 'V', snap, state='absent')
        assert not changed
        # the volume goes on: a write after every delete lands in the active data only
        ct.write_next(loc, 'V', timeline)
        problems += ['after writing: %s' % p for p in ct.state_problems(loc, 'V', timeline, remaining)]
    assert not problems, '\n'.join(problems)
    desc = ct.info(loc, 'V')['volume']
    assert desc['snapshots'] == [] and desc['size_bytes'] == SIZE and desc['format'] == 'raw'


def test_snapshot_create_result(loc):
    timeline, _p = ct.build(loc, 'V')
    changed, result, diff = ct.snapshot(loc, 'V', 'one')
    assert changed and result['actions']
    snap = result['snapshot']
    assert (snap['name'], snap['volume'], snap['location'], snap['state'], snap['size_bytes']) == \
        ('one', 'V', loc.location, 'present', SIZE)
    assert diff['before'] == {'snapshots': []} and diff['after'] == {'snapshots': ['one']}
    changed, result, _d = ct.snapshot(loc, 'V', 'one')
    assert not changed and result['actions'] == []
    assert not ct.point_problems(loc, 'V', timeline, timeline.now, 'one')
    listing = loc.listing()
    with pytest.raises(StorageError):
        ct.snapshot(loc, 'nothere', 'one')
    assert loc.listing() == listing


# ------------------------------------------------------------------ copies
def test_from_snapshot(loc):
    timeline, points = ct.build(loc, 'V', snaps=2)
    listing = None
    problems = []
    for snap, point in points:
        copy = 'from-%s' % snap
        changed, result, _d = ct.volume(loc, copy, source_volume='V', source_snapshot=snap)
        assert changed and result['volume']['size_bytes'] == SIZE and result['volume']['snapshots'] == []
        assert result['location'] == loc.location
        problems += ct.point_problems(loc, copy, timeline, point)
        changed, _r, _d = ct.volume(loc, copy, source_volume='V', source_snapshot=snap)
        assert not changed
    # larger than its source: the new space reads as zeros
    changed, result, _d = ct.volume(loc, 'big', source_volume='V', source_snapshot='s1', size='8M')
    assert changed and result['volume']['size_bytes'] == 8 * ct.MIB
    problems += ct.point_problems(loc, 'big', timeline, points[0][1]) + ct.zero_problems(loc, 'big', SIZE, SIZE)
    # a qcow2 copy
    changed, result, _d = ct.volume(loc, 'q', source_volume='V', source_snapshot='s2', format=ct.other_format(loc))
    assert changed and result['volume']['format'] == ct.other_format(loc)
    problems += ct.point_problems(loc, 'q', timeline, points[1][1])
    # the source is as it was
    problems += ct.state_problems(loc, 'V', timeline, points)
    assert not problems, '\n'.join(problems)
    # a copy is a volume of its own
    ct.write_next(loc, 'from-s1', timeline)
    assert not ct.state_problems(loc, 'V', timeline, points, active_point=timeline.now - 1)
    # a snapshot that does not exist, or a smaller copy, is refused and changes nothing
    listing = loc.listing()
    with pytest.raises(StorageError):
        ct.volume(loc, 'bad', source_volume='V', source_snapshot='nope')
    with pytest.raises(StorageError):
        ct.volume(loc, 'bad', source_volume='V', source_snapshot='s1', size='2M')
    assert loc.listing() == listing


@pytest.mark.parametrize('snaps', [0, 2], ids=['plain', 'with-snapshots'])
def test_clone(loc, snaps):
    timeline, points = ct.build(loc, 'V', snaps=snaps)
    changed, result, diff = ct.volume(loc, 'C', source_volume='V')
    assert changed and result['actions']
    assert result['volume']['size_bytes'] == SIZE and result['volume']['snapshots'] == []
    assert diff['before'] == {'state': 'absent'} and diff['after']['state'] == 'present'
    problems = ct.point_problems(loc, 'C', timeline, timeline.now) + ct.state_problems(loc, 'V', timeline, points)
    assert not problems, '\n'.join(problems)
    assert sorted(v['name'] for v in ct.info(loc)['volumes']) == ['C', 'V']
    changed, _r, _d = ct.volume(loc, 'C', source_volume='V')
    assert not changed
    # the two are independent
    source_now = timeline.now
    ct.write_next(loc, 'C', timeline)
    assert not ct.state_problems(loc, 'V', timeline, points, active_point=source_now)
    assert not ct.point_problems(loc, 'C', timeline, timeline.now)
    # a clone of a qcow2 source, into qcow2
    changed, result, _d = ct.volume(loc, 'CQ', source_volume='C', format=ct.other_format(loc), size='8M')
    assert changed and result['volume']['format'] == ct.other_format(loc)
    assert result['volume']['size_bytes'] == 8 * ct.MIB
    assert not ct.point_problems(loc, 'CQ', timeline, timeline.now) + ct.zero_problems(loc, 'CQ', SIZE, SIZE)


def test_clone_of_missing_source(loc):
    listing = loc.listing()
    with pytest.raises(StorageError):
        ct.volume(loc, 'C', source_volume='nothere')
    assert loc.listing() == listing


# ------------------------------------------------------------------ revert
def test_revert(loc):
    cls = kind_of(loc)
    timeline, points = ct.build(loc, 'V', snaps=2, writes_after=False)
    if 'revert_latest' not in cls.capabilities:
        with pytest.raises(Unsupported):
            ct.snapshot(loc, 'V', 's2', state='reverted')
        return
    changed, result, _d = ct.snapshot(loc, 'V', 's2', state='reverted')
    assert not changed and result['actions'] == [], 'nothing written since s2, yet: %s' % result
    ct.write_next(loc, 'V', timeline)
    ct.write_next(loc, 'V', timeline)
    changed, result, diff = ct.snapshot(loc, 'V', 's2', state='reverted')
    assert changed and result['actions']
    assert result['snapshot']['name'] == 's2' and result['snapshot']['state'] == 'reverted'
    assert diff['before'] == {'snapshots': ['s1', 's2'], 'data_since_snapshot': 'present'}
    assert diff['after'] == {'snapshots': ['s1', 's2'], 'data_since_snapshot': 'discarded'}
    problems = ct.state_problems(loc, 'V', timeline, points, active_point=points[-1][1])
    assert not problems, '\n'.join(problems)
    changed, _r, _d = ct.snapshot(loc, 'V', 's2', state='reverted')
    assert not changed
    # an older snapshot: a backend without revert_any refuses, and changes nothing
    listing = loc.listing()
    if 'revert_any' in cls.capabilities:
        changed, _r, _d = ct.snapshot(loc, 'V', 's1', state='reverted')
        assert changed
        assert not ct.point_problems(loc, 'V', timeline, points[0][1])
    else:
        with pytest.raises((Unsupported, Conflict)) as caught:
            ct.snapshot(loc, 'V', 's1', state='reverted')
        assert 's1' in caught.value.msg
        assert loc.listing() == listing
    with pytest.raises(StorageError):
        ct.snapshot(loc, 'V', 'nope', state='reverted')


# ------------------------------------------------------------------ check mode
def _check_then_real(loc, func, *args, **kwargs):
    """Run a task in check mode (nothing may change in the location), then
    for real: the check run predicted the real one's change, actions and
    neutral result."""
    listing = loc.listing()
    changed_c, result_c, diff_c = func(loc, *args, check_mode=True, **kwargs)
    assert loc.listing() == listing, 'check mode wrote into the location'
    changed, result, diff = func(loc, *args, **kwargs)
    assert changed_c == changed, (result_c, result)
    assert result_c['actions'] == result['actions']
    assert result_c['location'] == result['location']
    return result_c, result, diff_c, diff


def _neutral(vol):
    keep = ('name', 'backend', 'location', 'state', 'size_bytes', 'format', 'provisioning', 'managed')
    out = dict((k, vol.get(k)) for k in keep)
    out['snapshots'] = [(s['name'], s['size_bytes']) for s in vol.get('snapshots', [])]
    return out


def test_check_mode_writes_nothing_and_predicts(loc):
    timeline = sc.Timeline()
    for kwargs in (dict(size='4M'), dict(size='8M')):
        rc, rr, dc, dr = _check_then_real(loc, ct.volume, 'V', **kwargs)
        assert _neutral(rc['volume']) == _neutral(rr['volume']) and dc['after'] == dr['after']
        ct.write_next(loc, 'V', timeline)
    for snap in ('s1', 's2', 's3'):
        rc, rr, dc, dr = _check_then_real(loc, ct.snapshot, 'V', snap)
        assert (rc['snapshot']['name'], rc['snapshot']['state']) == (snap, 'present')
        assert dc['after'] == dr['after'] == {'snapshots': ['s1', 's2', 's3'][:int(snap[1])]}
        ct.write_next(loc, 'V', timeline)
    for kwargs in (dict(name='C', source_volume='V'), dict(name='F', source_volume='V', source_snapshot='s1'),
                   dict(name='Q', source_volume='V', source_snapshot='s2', format=ct.other_format(loc), size='16M')):
        name = kwargs.pop('name')
        rc, rr, dc, dr = _check_then_real(loc, ct.volume, name, **kwargs)
        assert _neutral(rc['volume']) == _neutral(rr['volume']) and dc['after'] == dr['after']
    if 'revert_latest' in kind_of(loc).capabilities:
        rc, rr, dc, dr = _check_then_real(loc, ct.snapshot, 'V', 's3', state='reverted')
        assert rc['snapshot']['state'] == 'reverted' and dc == dr
    for snap in ('s2', 's3', 's1'):
        rc, rr, dc, dr = _check_then_real(loc, ct.snapshot, 'V', snap, state='absent')
        assert rc['snapshot']['state'] == 'absent' and dc['after'] == dr['after']
    for name in ('C', 'F', 'Q', 'V'):
        rc, rr, dc, dr = _check_then_real(loc, ct.volume, name, state='absent', force=True)
        assert rc['volume'] == rr['volume'] and rc['volume']['state'] == 'absent'
    assert ct.info(loc)['volumes'] == []
    # and with nothing to do, check mode reports nothing
    _check_then_real(loc, ct.volume, 'V', state='absent')


def test_check_mode_on_a_volume_with_snapshots(loc):
    """Every task in check mode against a volume with a chain: nothing in
    the location changes, the data of every point in time stays."""
    timeline, points = ct.build(loc, 'V', snaps=3)
    listing = loc.listing()
    tasks = [
        (ct.volume, ('V',), dict(size='16M')),
        (ct.volume, ('C',), dict(source_volume='V')),
        (ct.volume, ('F',), dict(source_volume='V', source_snapshot='s2', size='8M')),
        (ct.snapshot, ('V', 's4'), {}),
        (ct.snapshot, ('V', 's1'), dict(state='absent')),
        (ct.snapshot, ('V', 's2'), dict(state='absent')),
        (ct.snapshot, ('V', 's3'), dict(state='absent')),
        (ct.snapshot, ('V', 's3'), dict(state='reverted')),
        (ct.volume, ('V',), dict(state='absent', force=True)),
    ]
    for func, args, kwargs in tasks:
        changed, result, _d = func(loc, *args, check_mode=True, **kwargs)
        assert changed and result['actions'], (args, kwargs, result)
        assert loc.listing() == listing, 'check mode of %s %s wrote into the location' % (args, kwargs)
    assert not ct.state_problems(loc, 'V', timeline, points)


# ------------------------------------------------------------------ re-run
def test_rerun_changes_nothing(loc):
    """A playbook's tasks, run twice: the second run reports no change and
    leaves the location byte-identical."""
    timeline = sc.Timeline()
    ct.volume(loc, 'G', size='4M', format=ct.other_format(loc))      # what the playbook deletes
    ct.volume(loc, 'V', size='4M')
    ct.snapshot(loc, 'V', 's0')
    tasks = [
        (ct.volume, ('V',), dict(size='8M')),
        (ct.snapshot, ('V', 's1'), {}),
        (ct.snapshot, ('V', 's2'), {}),
        (ct.volume, ('V',), {}),
        (ct.volume, ('C',), dict(source_volume='V')),
        (ct.volume, ('F',), dict(source_volume='V', source_snapshot='s1', format=ct.other_format(loc))),
        (ct.snapshot, ('V', 's0'), dict(state='absent')),
        (ct.volume, ('G',), dict(state='absent')),
    ]
    if 'revert_latest' in kind_of(loc).capabilities:
        tasks.append((ct.snapshot, ('V', 's2'), dict(state='reverted')))
    for func, args, kwargs in tasks:
        changed, _r, _d = func(loc, *args, **kwargs)
        assert changed or args == ('V',) and not kwargs or 'reverted' in kwargs.values(), (args, kwargs)
        if args == ('V', 's1') and not kwargs:
            ct.write_next(loc, 'V', timeline)
    listing = loc.listing()
    for func, args, kwargs in tasks:
        changed, result, _d = func(loc, *args, **kwargs)
        assert not changed and result['actions'] == [], (args, kwargs, result['actions'])
        changed, result, _d = func(loc, *args, check_mode=True, **kwargs)
        assert not changed and result['actions'] == [], (args, kwargs, result['actions'])
    assert loc.listing() == listing


# ------------------------------------------------------------------ returned keys
def test_returned_fields(loc):
    timeline, _p = ct.build(loc, 'V', snaps=1)
    _c, result, diff = ct.volume(loc, 'V', size='4M')
    assert not ct.missing(result, ct.VOLUME_RESULT_FIELDS)
    assert not ct.missing(result['volume'], ct.VOLUME_FIELDS), result['volume']
    assert not ct.missing(diff['before'], ct.VOLUME_DIFF_FIELDS) and not ct.missing(diff['after'],
                                                                                    ct.VOLUME_DIFF_FIELDS)
    for snap in result['volume']['snapshots']:
        assert not ct.missing(snap, ct.VOLUME_SNAPSHOT_FIELDS), snap
    assert 'provider_location' not in result and 'provider_location' not in result['volume']
    # check mode of a new volume returns the same keys
    _c, result, _d = ct.volume(loc, 'N', size='4M', check_mode=True)
    assert not ct.missing(result['volume'], ct.VOLUME_FIELDS), result['volume']
    _c, result, _d = ct.volume(loc, 'N', state='absent')
    assert not ct.missing(result['volume'], ct.ABSENT_VOLUME_FIELDS)

    for state in ('present', 'reverted', 'absent'):
        _c, result, diff = ct.snapshot(loc, 'V', 's1', state=state)
        assert not ct.missing(result, ct.SNAPSHOT_RESULT_FIELDS)
        fields = ct.ABSENT_SNAPSHOT_FIELDS if state == 'absent' else ct.SNAPSHOT_FIELDS
        assert not ct.missing(result['snapshot'], fields), result['snapshot']
        assert 'snapshots' in diff['before'] and 'snapshots' in diff['after']

    listing = ct.info(loc)
    assert not ct.missing(listing, ct.INFO_RESULT_FIELDS) and 'shares' not in listing
    assert not ct.missing(listing['capacity'], ct.TOTAL_CAPACITY_FIELDS)
    assert len(listing['locations']) == 1
    assert not ct.missing(listing['locations'][0], ct.CAPACITY_FIELDS)
    assert listing['locations'][0]['location'] == loc.location
    for vol in listing['volumes']:
        assert not ct.missing(vol, ct.VOLUME_FIELDS), vol
    one = ct.info(loc, 'V')
    assert not ct.missing(one['volume'], ct.VOLUME_FIELDS)
    assert ct.info(loc, 'nothere')['volume'] is None

    # the DataRef of the contract describes itself
    ref = ct.data_ref(loc, 'V')
    assert ref.kind in ('file', 'block', 'rbd') and ref.format in ('raw', 'qcow2') and ref.size == SIZE
    assert set(ref.to_dict()) >= set(['kind', 'format', 'size_bytes'])


def test_capacity_counts_volumes(loc):
    before = ct.info(loc)['locations'][0]
    ct.volume(loc, 'V', size='4M')
    ct.volume(loc, 'W', size='8M')
    after = ct.info(loc)['locations'][0]
    assert after['provisioned_bytes'] == before['provisioned_bytes'] + 12 * ct.MIB
    assert after['total_bytes'] > 0 and after['total_bytes'] >= after['free_bytes']


# ------------------------------------------------------------------ capabilities
def test_capabilities_declared(loc):
    cls = kind_of(loc)
    backend = ct.backend_of(loc, 'x')
    assert cls.capabilities <= CAPABILITIES, cls.capabilities - CAPABILITIES
    for cap in sorted(CAPABILITIES):
        if cap in cls.capabilities:
            backend.require_capability(cap, 'Doing %s' % cap)
            continue
        with pytest.raises(Unsupported) as caught:
            backend.require_capability(cap, 'Doing %s' % cap)
        assert cls.kind in caught.value.msg and cap in caught.value.msg
        assert caught.value.details.get('backend') == cls.kind
        assert caught.value.details.get('capability') == cap


def test_missing_capability_reaches_the_task(loc, monkeypatch):
    """A task needing a capability the backend lacks fails with Unsupported
    (not an AttributeError) and changes nothing."""
    ct.build(loc, 'V', snaps=1)
    cls = kind_of(loc)
    monkeypatch.setattr(cls, 'capabilities', cls.capabilities - frozenset(['revert_latest']))
    listing = loc.listing()
    for check_mode in (True, False):
        with pytest.raises(Unsupported) as caught:
            ct.snapshot(loc, 'V', 's1', state='reverted', check_mode=check_mode)
        assert 'revert_latest' in caught.value.msg and cls.kind in caught.value.msg
    assert loc.listing() == listing


# ------------------------------------------------------------------ kill -9 at every checkpoint
class Op(object):
    def __init__(self, name, func, params, setup, verify):
        self.name, self.func, self.params, self.setup, self.verify = name, func, params, setup, verify

    def __repr__(self):
        return self.name


def _nothing(loc):
    return None


def _verify_created(loc, ctx):
    desc = ct.info(loc, 'V')['volume']
    assert (desc['size_bytes'], desc['format'], desc['snapshots'], desc['pending_operation']) == \
        (SIZE, 'raw', [], None)
    assert not ct.zero_problems(loc, 'V', 0, SIZE)


def _verify_chain(remaining, extra=None):
    def verify(loc, ctx):
        timeline, points = ctx
        points = list(points) + ([(extra, timeline.now)] if extra else [])
        points = [p for p in points if p[0] in remaining]
        problems = ct.state_problems(loc, 'V', timeline, points)
        assert not problems, problems
        assert ct.info(loc, 'V')['volume']['pending_operation'] is None
    return verify


def _verify_clone(loc, ctx):
    timeline, points = ctx
    problems = ct.point_problems(loc, 'C', timeline, timeline.now) + ct.state_problems(loc, 'V', timeline, points)
    assert not problems, problems
    assert sorted(v['name'] for v in ct.info(loc)['volumes']) == ['C', 'V']
    for name in ('V', 'C'):
        assert ct.info(loc, name)['volume']['pending_operation'] is None


def _verify_grown(loc, ctx):
    timeline, points = ctx
    desc = ct.info(loc, 'V')['volume']
    assert desc['size_bytes'] == 8 * ct.MIB and desc['pending_operation'] is None
    problems = ct.state_problems(loc, 'V', timeline, points) + ct.zero_problems(loc, 'V', SIZE, SIZE)
    assert not problems, problems


def _verify_deleted(loc, ctx):
    assert ct.info(loc)['volumes'] == []
    assert ct.info(loc, 'V')['volume'] is None


def _verify_reverted(loc, ctx):
    timeline, points = ctx
    problems = ct.state_problems(loc, 'V', timeline, points, active_point=points[-1][1])
    assert not problems, problems
    assert ct.info(loc, 'V')['volume']['pending_operation'] is None


def _verify_from_snapshot(loc, ctx):
    timeline, points = ctx
    problems = ct.point_problems(loc, 'F', timeline, points[0][1]) + ct.zero_problems(loc, 'F', SIZE, SIZE) + \
        ct.state_problems(loc, 'V', timeline, points)
    assert not problems, problems
    assert ct.info(loc, 'F')['volume']['size_bytes'] == 8 * ct.MIB
    assert sorted(v['name'] for v in ct.info(loc)['volumes']) == ['F', 'V']


KILL_OPS = [
    Op('create', 'ensure_volume', lambda loc: ct.vparams(loc, 'V', size='4M'), _nothing, _verify_created),
    Op('grow-with-snapshots', 'ensure_volume', lambda loc: ct.vparams(loc, 'V', size='8M'),
       lambda loc: ct.build(loc, 'V', snaps=1), _verify_grown),
    Op('delete', 'ensure_volume', lambda loc: ct.vparams(loc, 'V', state='absent', force=True),
       lambda loc: ct.build(loc, 'V', snaps=2), _verify_deleted),
    Op('clone', 'ensure_volume', lambda loc: ct.vparams(loc, 'C', source_volume='V'),
       lambda loc: ct.build(loc, 'V', snaps=1), _verify_clone),
    Op('from-snapshot', 'ensure_volume',
       lambda loc: ct.vparams(loc, 'F', source_volume='V', source_snapshot='s1', size='8M'),
       lambda loc: ct.build(loc, 'V', snaps=2), _verify_from_snapshot),
    Op('snapshot-create', 'ensure_snapshot', lambda loc: ct.sparams(loc, 'V', 's3'),
       lambda loc: ct.build(loc, 'V', snaps=2), _verify_chain(['s1', 's2', 's3'], extra='s3')),
    Op('snapshot-delete-oldest', 'ensure_snapshot', lambda loc: ct.sparams(loc, 'V', 's1', 'absent'),
       lambda loc: ct.build(loc, 'V', snaps=3), _verify_chain(['s2', 's3'])),
    Op('snapshot-delete-middle', 'ensure_snapshot', lambda loc: ct.sparams(loc, 'V', 's2', 'absent'),
       lambda loc: ct.build(loc, 'V', snaps=3), _verify_chain(['s1', 's3'])),
    Op('snapshot-delete-latest', 'ensure_snapshot', lambda loc: ct.sparams(loc, 'V', 's2', 'absent'),
       lambda loc: ct.build(loc, 'V', snaps=2), _verify_chain(['s1'])),
    Op('revert', 'ensure_snapshot', lambda loc: ct.sparams(loc, 'V', 's2', 'reverted'),
       lambda loc: ct.build(loc, 'V', snaps=2), _verify_reverted),
]


def _kill_once(root, op, point, skip, clean_names):
    loc = root.fresh('k')
    try:
        ctx = op.setup(loc)
        res = sc.run_child(op.func, op.params(loc), fault=point, skip=skip)
        label = '%s killed at %s (hit %d)' % (op.name, point, skip + 1)
        if res.returncode != -signal.SIGKILL:
            return ['%s: the child was not killed: rc %s\n%s\n%s'
                    % (label, res.returncode, res.stdout[-1500:], res.stderr[-1500:])]
        problems = []
        try:
            changed, result, _d = getattr(volumes, op.func)(op.params(loc), False)
            problems += ['%s: a journal was discarded: %s' % (label, w)
                         for w in result.get('warnings', []) if 'Discarded' in w]
            op.verify(loc, ctx)
            changed, result, _d = getattr(volumes, op.func)(op.params(loc), False)
            if changed:
                problems.append('%s: a further run still changes: %s' % (label, result['actions']))
            if sorted(loc.listing_names()) != clean_names:
                problems.append('%s: the location holds %s, a run that was not killed leaves %s'
                                % (label, sorted(loc.listing_names()), clean_names))
        except Exception as exc:  # noqa: collected, every point is tried
            problems.append('%s: re-run failed: %s: %s' % (label, type(exc).__name__, exc))
        return problems
    finally:
        ct.remove(loc)


@pytest.fixture(scope='module')
def discovered():
    """{(location label, op name): checkpoints hit, in order}, each from one
    clean in-process run of the op (which must pass its checks)."""
    cache = {}

    def get(root, op):
        key = (root.label, op.name)
        if key not in cache:
            loc = root.fresh('d')
            try:
                ctx = op.setup(loc)
                with sc.recorded_checkpoints() as hits:
                    changed, _r, _d = getattr(volumes, op.func)(op.params(loc), False)
                assert changed
                op.verify(loc, ctx)
                names = sorted(loc.listing_names())
            finally:
                ct.remove(loc)
            cache[key] = (list(hits), names)
        return cache[key]
    return get


@pytest.mark.parametrize('op', KILL_OPS, ids=[op.name for op in KILL_OPS])
def test_kill_at_every_checkpoint_converges(backend_location, discovered, op):
    hits, clean_names = discovered(backend_location, op)
    points = sc.kill_points(hits)
    assert points, '%s reached no checkpoint' % op.name
    problems = []
    for point, skip in points:
        problems += _kill_once(backend_location, op, point, skip, clean_names)
    assert not problems, '%d problem(s) over %d kill points of %s:\n%s' % (
        len(problems), len(points), op.name, '\n'.join(problems))


def test_kill_ops_reach_every_named_checkpoint(backend_location, discovered):
    """Together the killed operations reach every named checkpoint of the
    backend's package (found through the registry), so a kill at each of
    their hits covers them all."""
    probe = backend_location.fresh('c')
    kind = ct.backend_of(probe, 'x').kind
    ct.remove(probe)
    named = set()
    for path in backends.modules_of(kind):
        with open(path) as handle:
            named |= set(re.findall(r"checkpoint\(\s*'([^'%]+)'\s*\)", handle.read()))
    hits = set()
    for op in KILL_OPS:
        hits.update(discovered(backend_location, op)[0])
    assert named - hits == set(), 'named checkpoints of backend %s no killed operation reaches: %s' % (
        kind, sorted(named - hits))


# ------------------------------------------------------------------ a copy across two locations
SHARE_A, SHARE_B = '192.0.2.10:/contract-a', '192.0.2.11:/contract-b'
SHARE_SIZES = {SHARE_A: 64 * ct.MIB, SHARE_B: 128 * ct.MIB}


@pytest.fixture
def two_shares():
    """Two shares 'mounted' at their md5 mount points under a mount point
    base of their own: two tmpfs mounts (shares.require_mounted only asks
    that something is mounted there), of 64 and 128 MiB."""
    if os.geteuid() != 0:
        pytest.fail('two tmpfs mounts need root', pytrace=False)
    base = tempfile.mkdtemp(prefix='blockyard-contract-shares-')
    points = []
    try:
        for share in (SHARE_A, SHARE_B):
            point = os.path.join(base, hashlib.md5(share.encode('utf-8')).hexdigest())
            os.mkdir(point)
            res = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=%d' % SHARE_SIZES[share], 'blockyard-contract',
                                  point], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 universal_newlines=True, check=False)
            assert res.returncode == 0, res.stdout
            points.append(point)
        yield base, dict(zip((SHARE_A, SHARE_B), points))
    finally:
        for point in points:
            if subprocess.run(['umount', point], check=False).returncode != 0:
                subprocess.run(['umount', '-l', point], check=False)
        shutil.rmtree(base, ignore_errors=True)


class SharesLocation(ct.Location):
    kind = 'file'

    def __init__(self, base, shares, points):
        super(SharesLocation, self).__init__('file-shares', dict(backend='file', shares=list(shares),
                                                                 mount_point_base=base), base)
        self.points = points

    @property
    def location(self):
        return None

    def listing(self):
        return sc.fingerprint(*sorted(self.points.values()))


def _shares_with_a_source(two_shares):
    base, points = two_shares
    only_a = SharesLocation(base, [SHARE_A], points)
    both = SharesLocation(base, [SHARE_A, SHARE_B], points)
    timeline, snaps = ct.build(only_a, 'V', snaps=1, size='16M')
    assert ct.info(only_a, 'V')['volume']['location'] == SHARE_A
    return only_a, both, timeline, snaps


# A holds 16 MiB of 64: a copy of 16 MiB more would reach 0.5 of it, above
# this ratio; B (128 MiB) takes two such copies (0.25)
RATIO = 0.3


def test_copy_across_two_locations(two_shares):
    only_a, both, timeline, snaps = _shares_with_a_source(two_shares)
    copy = dict(max_over_subscription_ratio=RATIO, size='16M')
    listing = both.listing()
    with pytest.raises(Conflict):
        ct.volume(only_a, 'C', source_volume='V', **copy)
    assert both.listing() == listing

    changed, result, _d = ct.volume(both, 'C', source_volume='V', check_mode=True, **copy)
    assert changed and result['location'] == SHARE_B and result['volume']['location'] == SHARE_B
    assert both.listing() == listing
    changed, result, _d = ct.volume(both, 'C', source_volume='V', **copy)
    assert changed and result['location'] == SHARE_B and result['volume']['location'] == SHARE_B
    assert not [a for a in result['actions'] if 'reflink' in a]
    changed, result, _d = ct.volume(both, 'F', source_volume='V', source_snapshot='s1', **copy)
    assert changed and result['location'] == SHARE_B
    listed = ct.info(both)
    placed = dict((v['name'], v['location']) for v in listed['volumes'])
    assert placed == {'V': SHARE_A, 'C': SHARE_B, 'F': SHARE_B}
    assert [c['location'] for c in listed['locations']] == [SHARE_A, SHARE_B]
    problems = ct.point_problems(both, 'C', timeline, timeline.now) + \
        ct.point_problems(both, 'F', timeline, snaps[0][1]) + \
        ct.state_problems(both, 'V', timeline, snaps)
    assert not problems, '\n'.join(problems)
    # the source is as it was: its snapshot only, no temporary one left
    assert [s['name'] for s in ct.info(both, 'V')['volume']['snapshots']] == ['s1']
    # re-runs find the copies where they are and change nothing
    for name, extra in (('C', {}), ('F', dict(source_snapshot='s1'))):
        extra.update(copy)
        changed, result, _d = ct.volume(both, name, source_volume='V', **extra)
        assert not changed and result['location'] == SHARE_B
    # the copies are independent of their source
    ct.write_next(both, 'C', timeline)
    assert not ct.state_problems(both, 'V', timeline, snaps, active_point=timeline.now - 1)
    changed, _r, _d = ct.volume(both, 'V', state='absent', force=True)
    assert changed
    assert not ct.point_problems(both, 'F', timeline, snaps[0][1])


def test_copy_placement_counts_the_source_size(two_shares):
    """A copy without `size` is as large as its source: placement must count
    those bytes (a 16 MiB copy cannot go beside its 16 MiB source on a 64 MiB
    share at the ratio 0.3), so it lands on the other share."""
    only_a, both, timeline, _snaps = _shares_with_a_source(two_shares)
    listing = both.listing()
    with pytest.raises(Conflict):
        ct.volume(only_a, 'C', source_volume='V', max_over_subscription_ratio=RATIO, check_mode=True)
    with pytest.raises(Conflict):
        ct.volume(only_a, 'C', source_volume='V', max_over_subscription_ratio=RATIO)
    assert both.listing() == listing
    changed, result, _d = ct.volume(both, 'C', source_volume='V', max_over_subscription_ratio=RATIO)
    assert changed and result['location'] == SHARE_B
    assert not ct.point_problems(both, 'C', timeline, timeline.now)


def _wipe(points):
    for point in points.values():
        for entry in os.listdir(point):
            path = os.path.join(point, entry)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)


@pytest.mark.parametrize('source_snapshot', [None, 's1'], ids=['clone', 'from-snapshot'])
def test_kill_during_a_copy_across_two_locations(two_shares, source_snapshot):
    """A copy from share A to share B killed at each of its checkpoints: the
    next run completes it on B, the source on A is as it was (its snapshot
    only, its data), and a further run changes nothing."""
    base, points = two_shares
    both = SharesLocation(base, [SHARE_A, SHARE_B], points)

    def params():
        return ct.vparams(both, 'C', source_volume='V', source_snapshot=source_snapshot,
                          max_over_subscription_ratio=RATIO, size='16M')
    _only_a, _both, timeline, snaps = _shares_with_a_source(two_shares)
    with sc.recorded_checkpoints() as hits:
        changed, result, _d = volumes.ensure_volume(params(), False)
    assert changed and result['location'] == SHARE_B
    clean = _names(points)
    kills = sc.kill_points(hits)
    assert kills
    want = timeline.now if source_snapshot is None else snaps[0][1]
    problems = []
    for point, skip in kills:
        label = 'killed at %s (hit %d)' % (point, skip + 1)
        _wipe(points)
        _only_a, _both, timeline, snaps = _shares_with_a_source(two_shares)
        res = sc.run_child('ensure_volume', params(), fault=point, skip=skip)
        if res.returncode != -signal.SIGKILL:
            problems.append('%s: not killed: rc %s %s' % (label, res.returncode, res.stderr[-1000:]))
            continue
        try:
            changed, result, _d = volumes.ensure_volume(params(), False)
            if result['location'] != SHARE_B:
                problems.append('%s: the re-run placed the copy on %s' % (label, result['location']))
            problems += ['%s: %s' % (label, p) for p in
                         ct.point_problems(both, 'C', timeline, want) + ct.state_problems(both, 'V', timeline, snaps)]
            listed = ct.info(both)
            names = dict((v['name'], (v['location'], v['pending_operation'])) for v in listed['volumes'])
            if names != {'V': (SHARE_A, None), 'C': (SHARE_B, None)}:
                problems.append('%s: after the re-run the shares hold %s' % (label, names))
            changed, result, _d = volumes.ensure_volume(params(), False)
            if changed:
                problems.append('%s: a further run still changes: %s' % (label, result['actions']))
            if _names(points) != clean:
                problems.append('%s: the shares hold %s, a run that was not killed leaves %s'
                                % (label, _names(points), clean))
        except Exception as exc:  # noqa: collected, every point is tried
            problems.append('%s: re-run failed: %s: %s' % (label, type(exc).__name__, exc))
    assert not problems, '%d problem(s) over %d kill points:\n%s' % (len(problems), len(kills), '\n'.join(problems))


def _names(points):
    """What each share holds, by name: a converged run leaves what a run
    that was not killed leaves."""
    return dict((share, sorted(os.listdir(point))) for share, point in points.items())
