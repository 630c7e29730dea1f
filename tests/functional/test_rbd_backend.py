# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rbd backend's own behaviour on the Ceph lab (scripts/ceph-lab), no
mocks: what the backend contract suite (test_contract.py) cannot say for
every backend. Data is written and read through librbd directly (the image
the result names, in its pool and namespace) and through the DataRef
(qemu-io); every test gets an RBD namespace of its own.

Covers: the lifecycle with points in time; clone depth and flattening;
deletes of sources with clones (trash) and of snapshots with children;
deletes refused while an image has watchers; connection_info; copies from
and to the file backend (with kill -9 convergence); bad input; the
restricted user client.blockyard; cross-process locks; journal validation;
missing bindings."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

import cephlab
import contract as ct
import snapchain as sc
from ansible_collections.blockyard.storage.plugins.module_utils import connection_info, volumes
from ansible_collections.blockyard.storage.plugins.module_utils.backends.rbd import bookkeeping
from ansible_collections.blockyard.storage.plugins.module_utils.errors import (
    Busy, Conflict, InvalidInput, LockTimeout, NotFound, StorageError, Unsupported)

rados = pytest.importorskip('rados')
rbd = pytest.importorskip('rbd')

MIB = ct.MIB
SIZE = ct.SIZE
SLOT = sc.SLOT


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope='module')
def root():
    try:
        return ct.rbd_root()
    except RuntimeError as exc:
        pytest.fail('rbd: %s' % exc, pytrace=False)


@pytest.fixture
def loc(root):
    """A fresh, empty namespace of pool rbd."""
    return root.fresh('rb')


@pytest.fixture(scope='module')
def cluster(root):
    """A connection of the test's own (not the backend's cached one): its
    watchers are other clients."""
    handle = rados.Rados(conffile=cephlab.CONF, rados_id='admin', conf={'keyring': cephlab.ADMIN_KEYRING})
    handle.connect(timeout=30)
    yield Lab(handle)
    handle.shutdown()


@pytest.fixture
def fdir(fast_vdir):
    return ct.FileLocation('file', fast_vdir)


class Lab(object):
    def __init__(self, handle):
        self.handle = handle
        self._ioctxs = {}

    def ioctx(self, pool, namespace=''):
        key = (pool, namespace or '')
        if key not in self._ioctxs:
            ioctx = self.handle.open_ioctx(pool)
            ioctx.set_namespace(namespace or '')
            self._ioctxs[key] = ioctx
        return self._ioctxs[key]

    def of(self, loc):
        return self.ioctx(loc.pool, loc.namespace)

    @contextlib.contextmanager
    def image(self, details, snap=None, read_only=False):
        """The image a result's details name, opened in their pool/namespace."""
        image = rbd.Image(self.ioctx(details['pool'], details['namespace']), details['image'], snapshot=snap,
                          read_only=read_only or snap is not None)
        try:
            yield image
        finally:
            image.close()

    def snaps(self, loc, name):
        image = rbd.Image(self.of(loc), 'volume-%s' % name, read_only=True)
        try:
            return [s['name'] for s in image.list_snaps()]
        finally:
            image.close()

    def trash(self, loc):
        return sorted(t['name'] for t in rbd.RBD().trash_list(self.of(loc)))

    def locks(self, loc):
        return sorted(o.key for o in self.of(loc).list_objects() if o.key.startswith('blockyard.lock.'))


class RbdTimeline(sc.Timeline):
    """sc.Timeline's patterns, written and read through librbd."""

    def write_rbd(self, image):
        pattern, offset = self.next_write()
        image.write(bytes([pattern]) * SLOT, offset)
        image.write(bytes([pattern]) * SLOT, self.common)
        image.flush()
        self.writes.append((pattern, offset))
        return self.now

    def rbd_problems(self, image, point, label=''):
        problems = []
        for pattern, offset, length in self.expectations(point):
            data = image.read(offset, length)
            if data != bytes([pattern]) * length:
                problems.append('%s: at %d expected 0x%02x, got %r...' % (label, offset, pattern, data[:8]))
        return problems


def zeros_rbd(image, offset, length, label=''):
    data = image.read(offset, length)
    return [] if data == b'\0' * length else ['%s: not zero in [%d, %d)' % (label, offset, offset + length)]


def chain_depth(lab, details):
    """The number of parents above an image, walked with librbd (and equal
    to details.clone_depth where the backend reports it)."""
    depth = 0
    image = rbd.Image(lab.ioctx(details['pool'], details['namespace']), details['image'], read_only=True)
    while True:
        try:
            spec = image.get_parent_image_spec()
            parent_id = image.parent_id()
        except rbd.ImageNotFound:
            image.close()
            break
        image.close()
        depth += 1
        image = rbd.Image(lab.ioctx(spec['pool_name'], spec.get('pool_namespace') or ''), image_id=parent_id,
                          read_only=True)
    if 'clone_depth' in details:
        assert details['clone_depth'] == depth, details
    return depth


def details_of(loc, name):
    return ct.info(loc, name)['volume']['details']


def write(lab, loc, name, timeline):
    with lab.image(details_of(loc, name)) as image:
        return timeline.write_rbd(image)


def problems_at(lab, loc, name, timeline, point, snap=None):
    """The point in time of volume name (or of its snapshot), read through
    librbd and through the DataRef."""
    rsnap = 'snapshot-%s' % snap if snap else None
    label = '%s@%s' % (name, snap) if snap else name
    with lab.image(details_of(loc, name), rsnap) as image:
        problems = timeline.rbd_problems(image, point, 'librbd ' + label)
    return problems + ct.point_problems(loc, name, timeline, point, snap)


def unchanged(loc, func, *args, **kwargs):
    """Run func; assert it reports no change and the namespace is as it was."""
    before = loc.listing()
    changed, result, _d = func(*args, **kwargs)
    assert not changed, result['actions']
    assert loc.listing() == before
    return result


def check_mode_writes_nothing(loc, func, *args, **kwargs):
    before = loc.listing()
    changed, result, _d = func(*args, check_mode=True, **kwargs)
    assert loc.listing() == before
    return changed, result


# ------------------------------------------------------------------ 1. lifecycle
def test_lifecycle_points_in_time(loc, cluster):
    assert check_mode_writes_nothing(loc, ct.volume, loc, 'V', size='4M')[0]
    changed, result, _d = ct.volume(loc, 'V', size='4M')
    assert changed
    details = result['volume']['details']
    assert (details['pool'], details['namespace'], details['image']) == (loc.pool, loc.namespace, 'volume-V')
    assert result['volume']['size_bytes'] == SIZE
    unchanged(loc, ct.volume, loc, 'V', size='4M')
    unchanged(loc, ct.volume, loc, 'V')

    tl = RbdTimeline()
    a = write(cluster, loc, 'V', tl)
    assert check_mode_writes_nothing(loc, ct.snapshot, loc, 'V', 's1')[0]
    changed, result, _d = ct.snapshot(loc, 'V', 's1')
    assert changed and result['snapshot']['details']['rbd_snapshot'] == 'snapshot-s1'
    assert result['snapshot']['details']['protected'] is True
    unchanged(loc, ct.snapshot, loc, 'V', 's1')
    b = write(cluster, loc, 'V', tl)
    assert ct.snapshot(loc, 'V', 's2')[0]
    unchanged(loc, ct.snapshot, loc, 'V', 's2')
    c = write(cluster, loc, 'V', tl)
    assert cluster.snaps(loc, 'V') == ['snapshot-s1', 'snapshot-s2']
    problems = problems_at(cluster, loc, 'V', tl, a, 's1') + problems_at(cluster, loc, 'V', tl, b, 's2') + \
        problems_at(cluster, loc, 'V', tl, c)
    assert not problems, problems

    # revert to the older snapshot (revert_any), then to the newer one
    assert check_mode_writes_nothing(loc, ct.snapshot, loc, 'V', 's1', 'reverted')[0]
    changed, result, diff = ct.snapshot(loc, 'V', 's1', 'reverted')
    assert changed and result['snapshot']['state'] == 'reverted'
    assert not problems_at(cluster, loc, 'V', tl, a)
    assert not check_mode_writes_nothing(loc, ct.snapshot, loc, 'V', 's1', 'reverted')[0]
    unchanged(loc, ct.snapshot, loc, 'V', 's1', 'reverted')
    assert ct.snapshot(loc, 'V', 's2', 'reverted')[0]
    unchanged(loc, ct.snapshot, loc, 'V', 's2', 'reverted')
    problems = problems_at(cluster, loc, 'V', tl, b) + problems_at(cluster, loc, 'V', tl, a, 's1') + \
        problems_at(cluster, loc, 'V', tl, b, 's2')
    assert not problems, problems

    # extend, write beyond the old end, revert: the size stays, the new part reads zeros
    assert check_mode_writes_nothing(loc, ct.volume, loc, 'V', size='8M')[0]
    assert ct.volume(loc, 'V', size='8M')[0]
    unchanged(loc, ct.volume, loc, 'V', size='8M')
    with cluster.image(details_of(loc, 'V')) as image:
        assert image.size() == 8 * MIB
        image.write(b'\x7f' * SLOT, 6 * MIB)
    changed, result, _d = ct.snapshot(loc, 'V', 's1', 'reverted')
    assert changed
    desc = ct.info(loc, 'V')['volume']
    assert desc['size_bytes'] == 8 * MIB and desc['pending_operation'] is None
    with cluster.image(details_of(loc, 'V')) as image:
        assert image.size() == 8 * MIB
        problems = tl.rbd_problems(image, a, 'V') + zeros_rbd(image, SIZE, SIZE, 'V')
    assert not problems, problems
    unchanged(loc, ct.snapshot, loc, 'V', 's1', 'reverted')

    # delete: check mode first, then for real, then again
    with pytest.raises(Conflict):
        ct.volume(loc, 'V', state='absent')
    assert check_mode_writes_nothing(loc, ct.volume, loc, 'V', state='absent', force=True)[0]
    assert ct.volume(loc, 'V', state='absent', force=True)[0]
    unchanged(loc, ct.volume, loc, 'V', state='absent', force=True)
    listing = loc.listing()
    assert listing['images'] == {} and listing['trash'] == [] and listing['journal'] == []
    assert cluster.locks(loc) == []


# ------------------------------------------------------------------ 2. clone depth
def test_clone_depth_two(loc, cluster):
    params = dict(max_clone_depth=2)
    ct.volume(loc, 'V', size='4M', **params)
    tl = RbdTimeline()
    p_v = write(cluster, loc, 'V', tl)
    _c, r1, _d = ct.volume(loc, 'C1', source_volume='V', **params)
    p_c1 = write(cluster, loc, 'C1', tl)
    _c, r2, _d = ct.volume(loc, 'C2', source_volume='C1', **params)
    p_c2 = write(cluster, loc, 'C2', tl)
    _c, r3, _d = ct.volume(loc, 'C3', source_volume='C2', **params)
    d1, d2, d3 = (r['volume']['details'] for r in (r1, r2, r3))
    assert d1['parent']['image'] == 'volume-V' and d1['parent']['snapshot'] == 'volume-C1.clone_snap'
    assert chain_depth(cluster, d1) == 1
    assert d2['parent']['image'] == 'volume-C1' and chain_depth(cluster, d2) == 2
    assert d3['parent'] is None and chain_depth(cluster, d3) == 0
    assert any('flatten' in a for a in r3['actions']), r3['actions']
    assert 'volume-C3.clone_snap' not in cluster.snaps(loc, 'C2')
    assert details_of(loc, 'C2')['copy_snapshots'] == []
    assert cluster.snaps(loc, 'C1') == ['volume-C2.clone_snap']
    with cluster.image(details_of(loc, 'C3')) as image:
        with pytest.raises(rbd.ImageNotFound):
            image.get_parent_image_spec()
    problems = []
    for name, point in (('V', p_v), ('C1', p_c1), ('C2', p_c2), ('C3', p_c2)):
        problems += problems_at(cluster, loc, name, tl, point)
    assert not problems, problems
    for name, src in (('C1', 'V'), ('C2', 'C1'), ('C3', 'C2')):
        unchanged(loc, ct.volume, loc, name, source_volume=src, **params)


def test_clone_depth_zero_flattens_every_copy(loc, cluster):
    params = dict(max_clone_depth=0)
    ct.volume(loc, 'V', size='4M', **params)
    tl = RbdTimeline()
    point = write(cluster, loc, 'V', tl)
    for name, src in (('C1', 'V'), ('C2', 'C1')):
        _c, result, _d = ct.volume(loc, name, source_volume=src, **params)
        assert result['volume']['details']['parent'] is None
        assert chain_depth(cluster, result['volume']['details']) == 0
        assert not problems_at(cluster, loc, name, tl, point)
    assert cluster.snaps(loc, 'V') == [] and cluster.snaps(loc, 'C1') == []


def test_flatten_volume_from_snapshot(loc, cluster):
    ct.volume(loc, 'V', size='4M')
    tl = RbdTimeline()
    point = write(cluster, loc, 'V', tl)
    ct.snapshot(loc, 'V', 's1')
    write(cluster, loc, 'V', tl)
    _c, result, _d = ct.volume(loc, 'F', source_volume='V', source_snapshot='s1', flatten_volume_from_snapshot=True)
    assert result['volume']['details']['parent'] is None
    assert any('flatten_volume_from_snapshot' in a for a in result['actions']), result['actions']
    assert not problems_at(cluster, loc, 'F', tl, point)
    assert ct.info(loc, 'V')['volume']['snapshots'][0]['dependent'] is False
    changed, result, _d = ct.snapshot(loc, 'V', 's1', 'absent')
    assert changed and not any('flatten' in a for a in result['actions']), result['actions']
    assert not problems_at(cluster, loc, 'F', tl, point)


# ------------------------------------------------------------------ 3. deletes with dependents
def test_delete_source_with_clone_goes_to_trash(loc, cluster):
    ct.volume(loc, 'V', size='4M')
    tl = RbdTimeline()
    point = write(cluster, loc, 'V', tl)
    ct.volume(loc, 'C', source_volume='V')
    old_id = details_of(loc, 'V')['id']
    changed, result, _d = ct.volume(loc, 'V', state='absent')
    assert changed and any('trash' in a for a in result['actions']), result['actions']
    trash = rbd.RBD().trash_list(cluster.of(loc))
    assert [(t['name'], t['id']) for t in trash] == [('volume-V', old_id)]
    assert not problems_at(cluster, loc, 'C', tl, point)
    assert [v['name'] for v in ct.info(loc)['volumes']] == ['C']
    assert ct.info(loc, 'V')['volume'] is None
    unchanged(loc, ct.volume, loc, 'V', state='absent')
    # the name is free at once
    changed, result, _d = ct.volume(loc, 'V', size='4M')
    assert changed and result['volume']['details']['id'] != old_id
    with cluster.image(details_of(loc, 'V')) as image:
        assert not zeros_rbd(image, 0, SIZE, 'new V')
    assert not problems_at(cluster, loc, 'C', tl, point)
    # the last clone takes the trashed source with it
    assert ct.volume(loc, 'C', state='absent')[0]
    assert cluster.trash(loc) == []
    assert sorted(loc.listing()['images']) == ['volume-V']
    assert cluster.snaps(loc, 'V') == []
    assert cluster.locks(loc) == [] and loc.listing()['journal'] == []


def test_trashed_middle_of_a_chain_releases_its_own_source(loc, cluster):
    """V -> C1 -> C2; C1 deleted (trash), then C2: C1 leaves the trash and
    V's snapshot volume-C1.clone_snap (C1's source) goes too."""
    ct.volume(loc, 'V', size='4M')
    tl = RbdTimeline()
    point = write(cluster, loc, 'V', tl)
    ct.volume(loc, 'C1', source_volume='V')
    ct.volume(loc, 'C2', source_volume='C1')
    assert ct.volume(loc, 'C1', state='absent')[0]
    assert cluster.trash(loc) == ['volume-C1']
    assert not problems_at(cluster, loc, 'C2', tl, point)
    assert ct.volume(loc, 'C2', state='absent')[0]
    assert cluster.trash(loc) == []
    assert cluster.snaps(loc, 'V') == [], 'V keeps the snapshot of its deleted copy C1'
    assert details_of(loc, 'V')['copy_snapshots'] == []


def test_delete_snapshot_with_a_child_flattens_it(loc, cluster):
    ct.volume(loc, 'V', size='4M')
    tl = RbdTimeline()
    point = write(cluster, loc, 'V', tl)
    ct.snapshot(loc, 'V', 's1')
    write(cluster, loc, 'V', tl)
    _c, result, _d = ct.volume(loc, 'F', source_volume='V', source_snapshot='s1')
    assert result['volume']['details']['parent']['snapshot'] == 'snapshot-s1'
    snap = ct.info(loc, 'V')['volume']['snapshots'][0]
    assert snap['dependent'] is True
    assert snap['details']['children'] == ['%s/%s/volume-F' % (loc.pool, loc.namespace)]
    assert check_mode_writes_nothing(loc, ct.snapshot, loc, 'V', 's1', 'absent')[0]
    changed, result, _d = ct.snapshot(loc, 'V', 's1', 'absent')
    assert changed and any('flatten' in a and 'volume-F' in a for a in result['actions']), result['actions']
    assert details_of(loc, 'F')['parent'] is None
    assert cluster.snaps(loc, 'V') == []
    assert not problems_at(cluster, loc, 'F', tl, point)
    unchanged(loc, ct.snapshot, loc, 'V', 's1', 'absent')


# ------------------------------------------------------------------ 4. busy
@pytest.mark.parametrize('with_snapshot', [False, True], ids=['plain', 'with-snapshot-force'])
def test_delete_refused_while_in_use(loc, cluster, with_snapshot):
    ct.volume(loc, 'V', size='4M')
    tl = RbdTimeline()
    point = write(cluster, loc, 'V', tl)
    if with_snapshot:
        ct.snapshot(loc, 'V', 's1')
    before = loc.listing()
    with cluster.image(details_of(loc, 'V')) as image:
        assert list(image.watchers_list())
        with pytest.raises(StorageError) as err:
            ct.volume(loc, 'V', state='absent', force=True)
        assert isinstance(err.value, Busy), err.value
        assert 'volume-V' in err.value.msg and 'detach' in err.value.msg, err.value.msg
        after = loc.listing()
    assert cluster.locks(loc) == []
    problems = []
    if after != before:
        problems.append('a refused delete changed the namespace: %s'
                        % dict((k, (before[k], after[k])) for k in before if before[k] != after[k]))
    pending = ct.info(loc, 'V')['volume']['pending_operation']
    if pending is not None:
        problems.append('a refused delete left the pending operation %s' % pending)
    # once detached, an unrelated task on V must not complete a delete that was refused
    try:
        ct.snapshot(loc, 'V', 's9')
    except StorageError as exc:
        problems.append('the next snapshot task on V failed: %s' % exc.msg)
    if ct.info(loc, 'V')['volume'] is None:
        problems.append('the next snapshot task on V deleted V (it completed the refused delete)')
    else:
        problems += problems_at(cluster, loc, 'V', tl, point)
    assert not problems, problems


# ------------------------------------------------------------------ 5. connection_info
def _default_ns_location(pool='rbd2'):
    return ct.RbdLocation('rbd', pool, None)


def _mon_port():
    return str(cephlab.PORT)


def test_connection_info(loc, cluster):
    dloc = _default_ns_location()
    name = 'ci%d' % os.getpid()
    try:
        ct.volume(dloc, name, size='4M')
        backend = ct.backend_of(dloc, name)
        vol = backend.require(name)
        hosts, ports = backend.cluster.monitors()
        info = connection_info.rbd(backend.data_ref(vol), hosts, ports, volume_id='1234')
        assert sorted(info) == ['data', 'driver_volume_type'] and info['driver_volume_type'] == 'rbd'
        data = info['data']
        assert sorted(data) == sorted(['name', 'hosts', 'ports', 'cluster_name', 'auth_enabled', 'auth_username',
                                       'secret_type', 'secret_uuid', 'volume_id', 'discard'])
        assert data['name'] == 'rbd2/volume-%s' % name
        assert data['hosts'] == ['127.0.0.1'] and data['ports'] == [_mon_port()]
        assert all(isinstance(p, str) for p in data['ports'])
        assert (data['cluster_name'], data['auth_enabled'], data['auth_username'], data['secret_type'],
                data['volume_id'], data['discard']) == ('ceph', True, 'admin', 'ceph', '1234', True)
        json.dumps(info)
        ct.snapshot(dloc, name, 's1')
        vol = backend.require(name)
        with pytest.raises(InvalidInput):
            connection_info.rbd(backend.data_ref(vol, 's1'), hosts, ports, volume_id='1234')
    finally:
        ct.volume(dloc, name, state='absent', force=True)
    ct.volume(loc, 'N', size='4M')
    backend = ct.backend_of(loc, 'N')
    with pytest.raises(Unsupported) as err:
        connection_info.rbd(backend.data_ref(backend.require('N')), hosts, ports, volume_id='x')
    assert loc.namespace in err.value.msg


# ------------------------------------------------------------------ 6. copies across backends
def _file_params(fdir):
    return dict(backend='file', volume_dir=fdir.root)


def _rbd_params(loc):
    return dict(backend='rbd', pool=loc.pool, namespace=loc.namespace, ceph_conf=cephlab.CONF,
                ceph_keyring=cephlab.ADMIN_KEYRING)


def _both(fdir, loc):
    return {'file': sc.fingerprint(fdir.root), 'rbd': loc.listing()}


def test_copy_file_raw_to_rbd(fdir, loc, cluster):
    tl = sc.Timeline()
    ct.volume(fdir, 'S', size='4M')
    point = ct.write_next(fdir, 'S', tl)
    src = _file_params(fdir)
    before = _both(fdir, loc)
    changed, _r = check_mode_writes_nothing(loc, ct.volume, loc, 'D', source_volume='S', source_location=src)
    assert changed and _both(fdir, loc) == before
    changed, result, _d = ct.volume(loc, 'D', source_volume='S', source_location=src, size='8M')
    assert changed and result['volume']['size_bytes'] == 8 * MIB
    assert result['volume']['details']['parent'] is None
    assert sc.fingerprint(fdir.root) == before['file']
    problems = ct.point_problems(loc, 'D', tl, point) + ct.zero_problems(loc, 'D', SIZE, SIZE)
    with cluster.image(details_of(loc, 'D')) as image:
        problems += RbdTimeline.rbd_problems(tl, image, point, 'librbd D')
        problems += zeros_rbd(image, SIZE, SIZE, 'D')
    assert not problems, problems
    unchanged(loc, ct.volume, loc, 'D', source_volume='S', source_location=src, size='8M')
    assert sc.fingerprint(fdir.root) == before['file']


def test_copy_file_qcow2_to_rbd(fdir, loc, cluster):
    tl, points = ct.build(fdir, 'Q', snaps=2, fmt='qcow2')
    src = _file_params(fdir)
    before = sc.fingerprint(fdir.root)
    assert ct.volume(loc, 'D', source_volume='Q', source_location=src)[0]
    assert ct.volume(loc, 'D1', source_volume='Q', source_snapshot='s1', source_location=src, size='8M')[0]
    assert sc.fingerprint(fdir.root) == before
    problems = ct.point_problems(loc, 'D', tl, tl.now) + ct.point_problems(loc, 'D1', tl, points[0][1]) + \
        ct.zero_problems(loc, 'D1', SIZE, SIZE) + ct.state_problems(fdir, 'Q', tl, points)
    assert not problems, problems
    assert ct.info(loc, 'D')['volume']['size_bytes'] == SIZE
    unchanged(loc, ct.volume, loc, 'D', source_volume='Q', source_location=src)
    unchanged(loc, ct.volume, loc, 'D1', source_volume='Q', source_snapshot='s1', source_location=src, size='8M')
    assert sc.fingerprint(fdir.root) == before


@pytest.mark.parametrize('fmt', ['raw', 'qcow2'])
def test_copy_rbd_to_file(fdir, loc, cluster, fmt):
    tl, points = ct.build(loc, 'R', snaps=2)
    src = _rbd_params(loc)
    before = _both(fdir, loc)
    changed, _r = check_mode_writes_nothing(fdir, ct.volume, fdir, 'D', source_volume='R', source_location=src,
                                            format=fmt)
    assert changed and _both(fdir, loc) == before
    changed, result, _d = ct.volume(fdir, 'D', source_volume='R', source_location=src, format=fmt)
    assert changed and result['volume']['format'] == fmt
    assert loc.listing() == before['rbd'], 'the rbd source changed'
    assert not any(s.endswith('.clone_snap') for s in cluster.snaps(loc, 'R'))
    changed, result, _d = ct.volume(fdir, 'D1', source_volume='R', source_snapshot='s1', source_location=src,
                                    format=fmt, size='8M')
    assert changed and result['volume']['size_bytes'] == 8 * MIB
    assert loc.listing() == before['rbd']
    problems = ct.point_problems(fdir, 'D', tl, tl.now) + ct.point_problems(fdir, 'D1', tl, points[0][1]) + \
        ct.zero_problems(fdir, 'D1', SIZE, SIZE) + ct.state_problems(loc, 'R', tl, points)
    assert not problems, problems
    files = sc.fingerprint(fdir.root)
    for kwargs in (dict(), dict(source_snapshot='s1', size='8M')):
        name = 'D1' if kwargs else 'D'
        changed, result, _d = ct.volume(fdir, name, source_volume='R', source_location=src, format=fmt, **kwargs)
        assert not changed, result['actions']
    assert sc.fingerprint(fdir.root) == files and loc.listing() == before['rbd']


def _kill_copy(make_locs, setup, params, verify):
    """A cross-backend copy killed -9 at each of its checkpoints converges
    on the re-run: verify passes, a further run changes nothing, and both
    sides hold what a run that was not killed leaves."""
    def names(locs):
        return dict((k, sorted(n for n in l.listing_names())) for k, l in locs.items())
    locs = make_locs()
    ctx = setup(locs)
    with sc.recorded_checkpoints() as hits:
        changed, _r, _d = volumes.ensure_volume(params(locs), False)
    assert changed
    verify(locs, ctx)
    clean = names(locs)
    points = sc.kill_points(hits)
    assert points
    problems = []
    for point, skip in points:
        label = 'killed at %s (hit %d)' % (point, skip + 1)
        locs = make_locs()
        ctx = setup(locs)
        res = sc.run_child('ensure_volume', params(locs), fault=point, skip=skip)
        if res.returncode != -signal.SIGKILL:
            problems.append('%s: not killed: rc %s %s %s'
                            % (label, res.returncode, res.stdout[-800:], res.stderr[-800:]))
            continue
        try:
            volumes.ensure_volume(params(locs), False)
            verify(locs, ctx)
            changed, result, _d = volumes.ensure_volume(params(locs), False)
            if changed:
                problems.append('%s: a further run still changes: %s' % (label, result['actions']))
            if names(locs) != clean:
                problems.append('%s: the locations hold %s, a clean run leaves %s' % (label, names(locs), clean))
        except Exception as exc:  # noqa: every point is tried
            problems.append('%s: re-run failed: %s: %s' % (label, type(exc).__name__, exc))
    return points, problems


@pytest.mark.parametrize('direction', ['file-to-rbd', 'rbd-to-file'])
@pytest.mark.parametrize('snap', [None, 's1'], ids=['current', 'from-snapshot'])
def test_kill_during_a_cross_backend_copy(root, fast_root, direction, snap):
    import tempfile

    def make_locs():
        return {'file': ct.FileLocation('file', tempfile.mkdtemp(dir=fast_root)), 'rbd': root.fresh('kx')}
    src_kind, dst_kind = direction.split('-to-')

    def setup(locs):
        return ct.build(locs[src_kind], 'S', snaps=1, fmt='qcow2' if src_kind == 'file' else None)

    def params(locs):
        src = _file_params(locs['file']) if src_kind == 'file' else _rbd_params(locs['rbd'])
        return ct.vparams(locs[dst_kind], 'D', source_volume='S', source_snapshot=snap, source_location=src,
                          size='8M')

    def verify(locs, ctx):
        tl, points = ctx
        want = points[0][1] if snap else tl.now
        problems = ct.point_problems(locs[dst_kind], 'D', tl, want) + \
            ct.zero_problems(locs[dst_kind], 'D', SIZE, SIZE) + ct.state_problems(locs[src_kind], 'S', tl, points)
        assert not problems, problems
        for loc in locs.values():
            for vol in ct.info(loc)['volumes']:
                assert vol['pending_operation'] is None, vol
    points, problems = _kill_copy(make_locs, setup, params, verify)
    assert not problems, '%d problem(s) over %d kill points %s:\n%s' % (len(problems), len(points), points,
                                                                        '\n'.join(problems))


# ------------------------------------------------------------------ 7. bad input
def _expect(exc_type, loc, func, *args, **kwargs):
    before = loc.listing()
    with pytest.raises(exc_type) as err:
        func(*args, **kwargs)
    assert loc.listing() == before
    return err.value.msg


def test_bad_pool_and_namespace(loc):
    msg = _expect(NotFound, loc, ct.volume, loc, 'V', size='4M', pool='nosuchpool', namespace=None)
    assert 'nosuchpool' in msg and 'ceph osd pool create' in msg, msg
    msg = _expect(NotFound, loc, ct.volume, loc, 'V', size='4M', namespace='nosuchns')
    assert 'nosuchns' in msg and 'rbd namespace create' in msg, msg
    _expect(NotFound, loc, ct.info, loc, namespace='nosuchns')
    for bad in ('rb/d', '../x'):
        _expect(InvalidInput, loc, ct.volume, loc, 'V', size='4M', pool=bad)
    _expect(InvalidInput, loc, ct.volume, loc, 'V', size='4M', namespace='a/b')


def test_bad_connection_settings(loc, tmp_path):
    msg = _expect(InvalidInput, loc, ct.volume, loc, 'V', size='4M', ceph_conf=str(tmp_path / 'nope.conf'))
    assert 'ceph_conf' in msg and 'nope.conf' in msg, msg
    keyring = str(tmp_path / 'wrong.keyring')
    subprocess.run(['ceph-authtool', '--create-keyring', keyring, '--gen-key', '-n', 'client.admin'], check=True,
                   stdout=subprocess.DEVNULL)
    start = time.monotonic()
    msg = _expect(StorageError, loc, ct.volume, loc, 'V', size='4M', ceph_keyring=keyring, connect_timeout=5)
    assert time.monotonic() - start < 15
    assert 'ceph_keyring' in msg and 'client.admin' in msg, msg
    assert 'AQ' not in msg, 'the message shows a key'
    conf = tmp_path / 'dead.conf'
    conf.write_text('[global]\nmon_host = 127.0.0.1:1\nauth_client_required = cephx\n')
    start = time.monotonic()
    msg = _expect(StorageError, loc, ct.volume, loc, 'V', size='4M', ceph_conf=str(conf), connect_timeout=2)
    assert time.monotonic() - start < 10, time.monotonic() - start
    assert 'connect_timeout' in msg, msg
    _expect(InvalidInput, loc, ct.volume, loc, 'V', size='4M', connect_timeout=0)


@pytest.mark.parametrize('kwargs', [
    dict(name='a.b'), dict(name='a/b'), dict(name='../V'), dict(name='V', source_volume='a.b'),
    dict(name='V', volume_dir='/tmp'), dict(name='V', owner='root'), dict(name='V', mode='0600'),
    dict(name='V', max_clone_depth=-1), dict(name='V', max_clone_depth=101),
], ids=lambda k: ','.join('%s=%s' % i for i in sorted(k.items())))
def test_bad_volume_options(loc, kwargs):
    name = kwargs.pop('name')
    msg = _expect(InvalidInput, loc, ct.volume, loc, name, size='4M', **kwargs)
    assert msg


def test_bad_snapshot_names(loc):
    ct.volume(loc, 'V', size='4M')
    for bad in ('s.1', 's/1', 'a@b'):
        _expect(InvalidInput, loc, ct.snapshot, loc, 'V', bad)


@pytest.mark.parametrize('kwargs,capability', [(dict(format='qcow2'), 'qcow2'),
                                               (dict(provisioning='thick'), 'thick')])
def test_unsupported_kinds(loc, kwargs, capability):
    msg = _expect(Unsupported, loc, ct.volume, loc, 'V', size='4M', **kwargs)
    assert capability in msg, msg


def test_shrink_refused(loc):
    ct.volume(loc, 'V', size='8M')
    msg = _expect(Conflict, loc, ct.volume, loc, 'V', size='4M')
    assert 'shrink' in msg, msg
    ct.volume(loc, 'V', size='8M', format='raw', provisioning='thin')
    _expect(Conflict, loc, ct.volume, loc, 'V', format='qcow2')


# ------------------------------------------------------------------ 8. restricted user
def test_restricted_user_cycle(loc, cluster):
    assert os.path.isfile(cephlab.USER_KEYRING)
    user = dict(ceph_user='blockyard', ceph_keyring=cephlab.USER_KEYRING)
    tl = RbdTimeline()
    _c, result, _d = ct.volume(loc, 'V', size='4M', **user)
    point = write(cluster, loc, 'V', tl)
    assert ct.snapshot(loc, 'V', 's1', **user)[0]
    write(cluster, loc, 'V', tl)
    assert ct.volume(loc, 'C', source_volume='V', **user)[0]
    assert ct.volume(loc, 'F', source_volume='V', source_snapshot='s1', **user)[0]
    assert ct.snapshot(loc, 'V', 's1', 'reverted', **user)[0]
    assert not problems_at(cluster, loc, 'V', tl, point)
    assert not problems_at(cluster, loc, 'F', tl, point)
    info = volumes.volume_info(ct.iparams(loc, **user))[1]
    assert sorted(info['volumes_by_name']) == ['C', 'F', 'V']
    assert ct.volume(loc, 'V', state='absent', force=True, **user)[0]      # C depends: trash
    assert ct.volume(loc, 'C', state='absent', **user)[0]
    assert ct.volume(loc, 'F', state='absent', **user)[0]
    listing = loc.listing()
    assert listing['images'] == {} and listing['trash'] == [] and cluster.locks(loc) == []


# ------------------------------------------------------------------ 9. locks
HOLDER = textwrap.dedent('''
    import json, sys, time
    from ansible_collections.blockyard.storage.plugins.module_utils import volumes
    params = json.loads(sys.argv[1])
    backend, _notes = volumes.locate(params, 'V')
    with backend.lock('V'):
        print('locked', flush=True)
        time.sleep(600)
''')


def test_lock_held_by_another_process(loc, cluster, monkeypatch):
    ct.volume(loc, 'V', size='4M')
    assert cluster.locks(loc) == []
    child = subprocess.Popen([sys.executable, '-c', HOLDER, json.dumps(ct.vparams(loc, 'V'))],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                             env=sc.child_env())
    try:
        assert child.stdout.readline().strip() == 'locked', child.stderr.read()
        assert cluster.locks(loc) == ['blockyard.lock.volume-V']
        monkeypatch.setattr(bookkeeping, 'LOCK_TIMEOUT', 2)
        start = time.monotonic()
        with pytest.raises(LockTimeout) as err:
            ct.snapshot(loc, 'V', 's1')
        assert 1.5 < time.monotonic() - start < 10
        msg = err.value.msg
        assert str(child.pid) in msg and socket.gethostname() in msg and 'rados' in msg and \
            ' rm blockyard.lock.volume-V' in msg, msg
        assert cluster.snaps(loc, 'V') == []
        # other volumes are not blocked
        assert ct.volume(loc, 'W', size='4M')[0]
    finally:
        child.kill()
        child.wait()
    start = time.monotonic()
    changed, result, _d = ct.snapshot(loc, 'V', 's1')
    assert time.monotonic() - start < 5
    assert changed and any('Broke the lock' in w for w in result.get('warnings', [])), result
    assert cluster.locks(loc) == []
    ct.snapshot(loc, 'V', 's1', 'absent')
    assert cluster.locks(loc) == []
    with pytest.raises(Conflict):
        ct.volume(loc, 'V', size='2M')      # a failing task releases the lock too
    assert cluster.locks(loc) == []
    ct.volume(loc, 'V', state='absent')
    assert cluster.locks(loc) == []


# ------------------------------------------------------------------ 10. journal validation
def _set_journal(lab, loc, name, raw):
    with rados.WriteOpCtx() as op:
        lab.of(loc).set_omap(op, ('volume-%s' % name,), (raw,))
        lab.of(loc).operate_write_op(op, 'blockyard.journal')


@pytest.mark.parametrize('raw', [b'not json', json.dumps({'op': 'delete', 'parent': {'pool': 'x'}}).encode(),
                                 json.dumps({'op': 'rm -rf', 'x': 1}).encode(),
                                 json.dumps({'op': 'snapshot_delete', 'snapshot': '../s'}).encode()],
                         ids=['not-json', 'bad-parent', 'bad-op', 'bad-snapshot'])
def test_invalid_journal(loc, cluster, raw):
    ct.volume(loc, 'V', size='4M')
    ct.volume(loc, 'W', size='4M')
    ct.snapshot(loc, 'V', 's0')
    _set_journal(cluster, loc, 'V', raw)
    listed = ct.info(loc)['volumes_by_name']
    assert sorted(listed) == ['V', 'W']
    v = listed['V']
    error = v.get('error') or (v.get('pending_operation') or {}).get('error')
    assert error and 'blockyard.journal' in error, v
    assert listed['W'].get('error') is None and listed['W']['pending_operation'] is None
    before = loc.listing()
    with pytest.raises(StorageError) as err:
        ct.snapshot(loc, 'V', 's1')
    msg = err.value.msg
    assert 'blockyard.journal' in msg and 'volume-V' in msg and 'rados' in msg and 'force=true' in msg, msg
    assert loc.listing() == before
    with pytest.raises(StorageError):
        ct.volume(loc, 'V', state='absent')     # without force: not discarded
    assert loc.listing() == before
    changed, result, _d = ct.volume(loc, 'V', state='absent', force=True)
    assert changed and any('Discarded' in w for w in result.get('warnings', [])), result
    assert sorted(loc.listing()['images']) == ['volume-W'] and loc.listing()['journal'] == []


# ------------------------------------------------------------------ 11. missing bindings
MISSING = textwrap.dedent('''
    import json, sys
    sys.modules['rados'] = None
    sys.modules['rbd'] = None
    from ansible_collections.blockyard.storage.plugins.module_utils import volumes
    from ansible_collections.blockyard.storage.plugins.module_utils.errors import MissingDependency
    rbd_params, file_params = json.loads(sys.argv[1]), json.loads(sys.argv[2])
    out = {}
    try:
        volumes.ensure_volume(rbd_params, False)
        out['rbd'] = 'no error'
    except MissingDependency as exc:
        out['rbd'] = 'MissingDependency: ' + exc.msg
    except Exception as exc:
        out['rbd'] = '%s: %s' % (type(exc).__name__, exc)
    changed, result, _d = volumes.ensure_volume(file_params, False)
    out['file'] = [changed, result['volume']['size_bytes']]
    print(json.dumps(out))
''')


def test_missing_bindings(loc, fdir):
    res = subprocess.run([sys.executable, '-c', MISSING, json.dumps(ct.vparams(loc, 'V', size='4M')),
                          json.dumps(ct.vparams(fdir, 'F', size='4M'))], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, universal_newlines=True, env=sc.child_env(), timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out['rbd'].startswith('MissingDependency: ') and 'python3-rados' in out['rbd'] and \
        'python3-rbd' in out['rbd'], out
    assert out['file'] == [True, SIZE]
    assert loc.listing()['images'] == {}


# ------------------------------------------------------------------ forged locks, restricted copies, kill in qemu-img
def _forge_lock(lab, loc, name, raw):
    lab.of(loc).write_full('blockyard.lock.volume-%s' % name, raw)


def test_lock_of_another_host_is_waited_for(loc, cluster, monkeypatch):
    ct.volume(loc, 'V', size='4M')
    monkeypatch.setattr(bookkeeping, 'LOCK_TIMEOUT', 1)
    holder = {'host': 'elsewhere.example', 'boot': 'x', 'pid': 4242, 'start': '1', 'since': int(time.time()),
              'addr': None}
    _forge_lock(cluster, loc, 'V', json.dumps(holder).encode())
    with pytest.raises(LockTimeout) as err:
        ct.snapshot(loc, 'V', 's1')
    assert 'elsewhere.example' in err.value.msg and '4242' in err.value.msg, err.value.msg
    _forge_lock(cluster, loc, 'V', b'\x00garbage')
    with pytest.raises(LockTimeout) as err:
        ct.snapshot(loc, 'V', 's1')
    assert 'unknown holder' in err.value.msg, err.value.msg
    assert cluster.locks(loc) == ['blockyard.lock.volume-V'], 'a lock of a live holder was broken'
    # a holder of this host from an earlier boot is dead: broken at once
    holder.update(host=socket.gethostname(), boot='an-earlier-boot')
    _forge_lock(cluster, loc, 'V', json.dumps(holder).encode())
    changed, result, _d = ct.snapshot(loc, 'V', 's1')
    assert changed and any('Broke the lock' in w for w in result.get('warnings', [])), result
    assert cluster.locks(loc) == []


@pytest.mark.parametrize('direction', ['file-to-rbd', 'rbd-to-file'])
def test_restricted_user_copies_across_backends(loc, fdir, direction):
    user = dict(ceph_user='blockyard', ceph_keyring=cephlab.USER_KEYRING)
    rloc = ct.RbdLocation('rbd', loc.pool, loc.namespace)
    rloc.params.update(user)
    if direction == 'file-to-rbd':
        src, dst, src_params = fdir, rloc, _file_params(fdir)
    else:
        src, dst, src_params = rloc, fdir, dict(_rbd_params(loc), **user)
    tl, points = ct.build(src, 'S', snaps=1)
    assert ct.volume(dst, 'D', source_volume='S', source_location=src_params)[0]
    assert ct.volume(dst, 'D1', source_volume='S', source_snapshot='s1', source_location=src_params)[0]
    problems = ct.point_problems(dst, 'D', tl, tl.now) + ct.point_problems(dst, 'D1', tl, points[0][1])
    assert not problems, problems


def test_kill_inside_qemu_img_during_file_to_rbd(root, fast_vdir, cluster):
    """kill -9 of the module while qemu-img writes into the new image: the
    next run removes the partial image (fencing qemu-img's watch) and copies
    again, without waiting for the watch timeout."""
    floc = ct.FileLocation('file', fast_vdir)
    ct.volume(floc, 'S', size='256M')
    ref = ct.data_ref(floc, 'S')
    with open(ref.path, 'r+b') as handle:
        for offset in range(0, 256 * MIB, 4 * MIB):
            handle.seek(offset)
            handle.write(os.urandom(MIB))
    loc = root.fresh('kq')
    params = ct.vparams(loc, 'D', source_volume='S', source_location=_file_params(floc))
    cmd = [sys.executable, '-c', sc.CHILD, 'ensure_volume', json.dumps(params)]
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=sc.child_env())
    deadline = time.monotonic() + 60
    killed = False
    try:
        # kill the module while its qemu-img child writes into volume-D (found by its parent and argv)
        while time.monotonic() < deadline and child.poll() is None and not killed:
            for entry in os.listdir('/proc'):
                if not entry.isdigit():
                    continue
                try:
                    with open('/proc/%s/cmdline' % entry, 'rb') as handle:
                        argv = handle.read().split(b'\0')
                    with open('/proc/%s/stat' % entry) as handle:
                        ppid = int(handle.read().rsplit(')', 1)[1].split()[1])
                except (IOError, OSError, ValueError, IndexError):
                    continue
                if ppid == child.pid and argv[0].endswith(b'qemu-img') and any(b'volume-D' in a for a in argv):
                    time.sleep(0.2)
                    child.send_signal(signal.SIGKILL)
                    killed = True
                    break
            time.sleep(0.01)
    finally:
        if child.poll() is None and not killed:
            child.kill()
        child.wait()
    assert killed, 'qemu-img was never seen writing into volume-D: the copy ended first (make the source larger)'
    assert ct.info(loc, 'D')['volume']['pending_operation'] is not None
    start = time.monotonic()
    changed, result, _d = ct.volume(loc, 'D', source_volume='S', source_location=_file_params(floc))
    assert changed and time.monotonic() - start < 60, time.monotonic() - start
    backend = ct.backend_of(floc, 'S')
    with open(backend.data_ref(backend.require('S')).path, 'rb') as handle:
        want = handle.read()
    with cluster.image(details_of(loc, 'D'), read_only=True) as image:
        assert image.size() == 256 * MIB
        for offset in range(0, 256 * MIB, 16 * MIB):
            assert image.read(offset, 16 * MIB) == want[offset:offset + 16 * MIB], offset
    unchanged(loc, ct.volume, loc, 'D', source_volume='S', source_location=_file_params(floc))
    assert cluster.locks(loc) == [] and loc.listing()['journal'] == []


@pytest.mark.parametrize('where', ['other-namespace', 'other-pool-default-namespace'])
def test_copy_between_rbd_locations(root, cluster, where):
    """A copy from one pool/namespace into another of the same cluster (a
    clone where librbd can make one, else a copy), its data, and the
    source's delete/release afterwards."""
    if where == 'other-namespace':
        src_loc, dst_loc = root.fresh('xa'), root.fresh('xb')
        name = 'V'
    else:
        src_loc, dst_loc = ct.RbdLocation('rbd', 'rbd', None), ct.RbdLocation('rbd', 'rbd2', None)
        name = 'x%d' % os.getpid()
    src = _rbd_params(src_loc)
    src['namespace'] = src_loc.namespace
    try:
        ct.volume(src_loc, name, size='4M')
        tl = RbdTimeline()
        point = write(cluster, src_loc, name, tl)
        changed, result, _d = ct.volume(dst_loc, 'C' + name, source_volume=name, source_location=src)
        assert changed
        assert not problems_at(cluster, dst_loc, 'C' + name, tl, point)
        unchanged(dst_loc, ct.volume, dst_loc, 'C' + name, source_volume=name, source_location=src)
        assert ct.volume(src_loc, name, state='absent')[0]
        assert not problems_at(cluster, dst_loc, 'C' + name, tl, point)
        assert ct.volume(dst_loc, 'C' + name, state='absent')[0]
        assert 'volume-%s' % name not in cluster.trash(src_loc)
    finally:
        ct.volume(dst_loc, 'C' + name, state='absent', force=True)
        ct.volume(src_loc, name, state='absent', force=True)
