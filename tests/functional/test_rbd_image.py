# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rbd_image core (rbd_images.ensure_image) against a real single-node
Ceph cluster (scripts/ceph-lab), in-process, no mocks: every option, its
re-run (changed False, no actions), check mode (the pools are listed before
and after), diff, the RETURN keys, and bad input.

The cluster: CEPH_LAB_DIR / CEPH_LAB_PORT from BLOCKYARD_CEPH_DIR /
BLOCKYARD_CEPH_PORT (default /var/lib/byceph, 6789). A cluster that was
already running is left running; one this module started is stopped."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import base64
import json
import os
import struct
import subprocess
import sys
import time

import pytest
import yaml

from ansible_collections.blockyard.storage.plugins.module_utils import ceph, rbd_images
from ansible_collections.blockyard.storage.plugins.module_utils.errors import (
    Busy, Conflict, InvalidInput, NotFound, StorageError, Unsupported)
from ansible_collections.blockyard.storage.plugins.modules import rbd_image as rbd_image_module

PREFIX = 'byimg-'
MIB = 1024 * 1024


@pytest.fixture(scope='module')
def lab():
    """The conf path of the running lab cluster (cephlab: the session
    stops it when it started it)."""
    import cephlab
    if ceph.IMPORT_ERROR is not None:
        pytest.fail('the rados/rbd bindings are not importable in this Python (scripts/install links them)',
                    pytrace=False)
    try:
        yield cephlab.ensure()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope='module')
def handle(lab):
    import rados
    cluster = rados.Rados(conffile=lab, rados_id='admin')
    cluster.connect(timeout=30)
    yield cluster
    cluster.shutdown()


def _cleanup(handle):
    import rbd
    for pool in ('rbd', 'rbd2'):
        ioctx = handle.open_ioctx(pool)
        try:
            for namespace in [''] + list(rbd.RBD().namespace_list(ioctx)):
                ioctx.set_namespace(namespace)
                # clones first (newest names last), so that parents can go
                for _round in range(3):
                    for name in rbd.RBD().list(ioctx):
                        if name.startswith(PREFIX):
                            try:
                                run(params(name, pool=pool, namespace=namespace or None, state='absent', force=True))
                            except StorageError:
                                pass
                for entry in list(rbd.RBD().trash_list(ioctx)):
                    if entry['name'].startswith(PREFIX):
                        with rbd.Image(ioctx, image_id=entry['id']) as image:
                            for snap in list(image.list_snaps()):
                                if image.is_protected_snap(snap['name']):
                                    image.unprotect_snap(snap['name'])
                                image.remove_snap(snap['name'])
                        rbd.RBD().trash_remove(ioctx, entry['id'], force=True)
                if namespace.startswith(PREFIX):
                    ioctx.set_namespace('')
                    rbd.RBD().namespace_remove(ioctx, namespace)
        finally:
            ioctx.close()


_CONF = {}


@pytest.fixture(autouse=True)
def clean(lab, handle):
    _CONF['conf'] = lab
    _cleanup(handle)
    yield
    _cleanup(handle)


def params(name, **kwargs):
    """Every option with its default, as AnsibleModule would give them."""
    result = dict((key, spec.get('default')) for key, spec in rbd_images.argument_spec().items())
    result.update(name=name, pool='rbd', ceph_conf=_CONF['conf'])
    result.update(kwargs)
    return result


def run(p, check_mode=False):
    return rbd_images.ensure_image(p, check_mode)


def ensure(name, check_mode=False, **kwargs):
    return run(params(name, **kwargs), check_mode)


def rerun_unchanged(name, **kwargs):
    changed, result, diff = ensure(name, **kwargs)
    assert changed is False and result['actions'] == [], result['actions']
    assert diff['before'] == diff['after']
    return result


def ioctx(handle, pool='rbd', namespace=None):
    ctx = handle.open_ioctx(pool)
    if namespace:
        ctx.set_namespace(namespace)
    return ctx


def listing(handle, pools=('rbd', 'rbd2')):
    """Everything check mode must not change: images, sizes, features,
    parents, snapshots and their protection, metadata, the trash."""
    import rbd
    out = {}
    for pool in pools:
        ctx = ioctx(handle, pool)
        try:
            for namespace in [''] + sorted(rbd.RBD().namespace_list(ctx)):
                ctx.set_namespace(namespace)
                for name in sorted(rbd.RBD().list(ctx)):
                    with rbd.Image(ctx, name, read_only=True) as image:
                        try:
                            parent = image.get_parent_image_spec()
                        except rbd.ImageNotFound:
                            parent = None
                        snaps = [(s['name'], s['size'], image.is_protected_snap(s['name']))
                                 for s in image.list_snaps()]
                        out['%s/%s/%s' % (pool, namespace, name)] = {
                            'size': image.size(), 'features': image.features(), 'parent': parent, 'snaps': snaps,
                            'metadata': list(image.metadata_list()), 'stat': image.stat(),
                        }
                out['%s/%s trash' % (pool, namespace)] = sorted(e['name'] for e in rbd.RBD().trash_list(ctx))
        finally:
            ctx.close()
    return out


def write(handle, name, offset, data, pool='rbd'):
    import rbd
    ctx = ioctx(handle, pool)
    try:
        with rbd.Image(ctx, name) as image:
            image.write(data, offset)
    finally:
        ctx.close()


def read(handle, name, offset, length, pool='rbd'):
    import rbd
    ctx = ioctx(handle, pool)
    try:
        with rbd.Image(ctx, name, read_only=True) as image:
            return image.read(offset, length)
    finally:
        ctx.close()


def documented_image_keys():
    ret = yaml.safe_load(rbd_image_module.RETURN)
    return sorted(ret['image']['contains']), sorted(ret)


# creation, options, idempotency -----------------------------------------------

def test_create_with_features_object_size_and_data_pool(handle):
    import rbd
    name = PREFIX + 'full'
    features = ['layering', 'exclusive-lock', 'object-map', 'fast-diff', 'deep-flatten']
    changed, result, diff = ensure(name, size='64M', features=features, object_size='8M', data_pool='rbd2')
    assert changed is True and len(result['actions']) == 1
    assert 'create image rbd/%s of %d bytes' % (name, 64 * MIB) in result['actions'][0]
    image = result['image']
    keys, top = documented_image_keys()
    assert sorted(image) == keys
    assert set(top) <= set(result) | set(['diff'])
    assert image['size_bytes'] == 64 * MIB and image['order'] == 23 and image['object_size_bytes'] == 8 * MIB
    assert image['features'] == sorted(features + ['data-pool'])
    assert image['data_pool'] == 'rbd2' and image['parent'] is None and image['snapshots'] == []
    assert image['watchers'] == [] and image['id'] and image['namespace'] is None
    assert diff['before'] == {'state': 'absent'}
    assert diff['after'] == {'state': 'present', 'size_bytes': 64 * MIB, 'features': image['features'],
                             'object_size_bytes': 8 * MIB, 'data_pool': 'rbd2', 'parent': None, 'snapshots': {}}
    ctx = ioctx(handle)
    try:
        with rbd.Image(ctx, name, read_only=True) as real:
            assert real.stat()['order'] == 23 and real.size() == 64 * MIB
            assert handle.pool_reverse_lookup(real.data_pool_id()) == 'rbd2'
            assert real.features() & rbd.RBD_FEATURE_FAST_DIFF
    finally:
        ctx.close()
    again = rerun_unchanged(name, size='64M', features=features, object_size='8M', data_pool='rbd2')
    assert again['image'] == image
    # object_size and data_pool are fixed at creation: not silently ignored
    with pytest.raises(Conflict, match='object size .*fixed at creation'):
        ensure(name, size='64M', features=features, object_size='4M')
    with pytest.raises(Conflict, match='data pool rbd2.*fixed at creation'):
        ensure(name, size='64M', features=features, data_pool='rbd')


def test_integer_size_is_gib_and_default_features(handle):
    name = PREFIX + 'gib'
    changed, result, _diff = ensure(name, size=1)
    assert changed and result['image']['size_bytes'] == 1024 * MIB
    assert result['image']['features'] == ['layering'] and result['image']['order'] == 22
    rerun_unchanged(name, size='1G')


def test_namespace(handle):
    import rbd
    ctx = ioctx(handle)
    try:
        rbd.RBD().namespace_create(ctx, PREFIX + 'ns')
    finally:
        ctx.close()
    name = PREFIX + 'in-ns'
    changed, result, _diff = ensure(name, namespace=PREFIX + 'ns', size='4M')
    assert changed and result['image']['namespace'] == PREFIX + 'ns'
    assert 'rbd/%sns/%s' % (PREFIX, name) in result['actions'][0]
    rerun_unchanged(name, namespace=PREFIX + 'ns', size='4M')
    assert name not in rbd.RBD().list(ioctx(handle))
    with pytest.raises(NotFound, match='Namespace nope does not exist in pool rbd'):
        ensure(name, namespace='nope', size='4M')


def test_grow_shrink_refusal_and_allow_shrink(handle):
    name = PREFIX + 'size'
    ensure(name, size='8M')
    changed, result, diff = ensure(name, size='16M')
    assert changed and result['actions'] == ['resize image rbd/%s from %d to %d bytes' % (name, 8 * MIB, 16 * MIB)]
    assert diff['before']['size_bytes'] == 8 * MIB and diff['after']['size_bytes'] == 16 * MIB
    rerun_unchanged(name, size='16M')
    before = listing(handle)
    with pytest.raises(Conflict) as err:
        ensure(name, size='8M')
    assert str(16 * MIB) in err.value.msg and str(8 * MIB) in err.value.msg and 'allow_shrink' in err.value.msg
    assert name in err.value.msg
    assert listing(handle) == before
    changed, result, _diff = ensure(name, size='8M', allow_shrink=True)
    assert changed and result['image']['size_bytes'] == 8 * MIB
    rerun_unchanged(name, size='8M', allow_shrink=True)


def test_update_features(handle):
    name = PREFIX + 'feat'
    ensure(name, size='8M', features=['layering', 'deep-flatten'])
    wanted = ['layering', 'deep-flatten', 'exclusive-lock', 'object-map', 'fast-diff']
    changed, result, diff = ensure(name, size='8M', features=wanted)
    assert changed and result['actions'] == ['enable features exclusive-lock, fast-diff, object-map of image rbd/%s'
                                             % name]
    assert result['image']['features'] == sorted(wanted)
    assert diff['after']['features'] == sorted(wanted)
    rerun_unchanged(name, size='8M', features=wanted)
    # disable two, and deep-flatten (allowed one way only)
    changed, result, _diff = ensure(name, size='8M', features=['layering', 'exclusive-lock'])
    assert changed and result['actions'] == ['disable features deep-flatten, fast-diff, object-map of image rbd/%s'
                                             % name]
    assert result['image']['features'] == ['exclusive-lock', 'layering']
    rerun_unchanged(name, size='8M', features=['layering', 'exclusive-lock'])
    changed, result, _diff = ensure(name, size='8M', features=['layering', 'exclusive-lock', 'journaling'])
    assert changed and 'journaling' in result['image']['features']
    ensure(name, size='8M', features=['layering'])
    before = listing(handle)
    with pytest.raises(Unsupported, match='deep-flatten.*cannot be changed on an existing image'):
        ensure(name, size='8M', features=['layering', 'deep-flatten'])
    with pytest.raises(Unsupported, match='object-map and fast-diff together'):
        ensure(name, size='8M', features=['layering', 'exclusive-lock', 'object-map'])
    with pytest.raises(Unsupported, match='striping cannot be changed'):
        ensure(name, size='8M', features=['layering', 'striping'])
    with pytest.raises(Unsupported, match='layering cannot be changed'):
        ensure(name, size='8M', features=[])
    with pytest.raises(InvalidInput, match='feature object-map needs exclusive-lock'):
        ensure(name, size='8M', features=['layering', 'object-map'])
    with pytest.raises(InvalidInput, match='unknown features bogus'):
        ensure(name, size='8M', features=['layering', 'bogus'])
    with pytest.raises(InvalidInput, match='data-pool are set by Ceph'):
        ensure(name, size='8M', features=['layering', 'data-pool'])
    assert listing(handle) == before


# clones, flatten, snapshots --------------------------------------------------

def _golden(name, protected=None):
    ensure(name, size='8M', snapshots=[{'name': 'base', 'state': 'present', 'protected': protected}])


def test_clone_protects_the_parent_snapshot_then_flatten(handle):
    golden, clone = PREFIX + 'golden', PREFIX + 'clone'
    _golden(golden)
    write(handle, golden, 0, b'G' * 4096)      # after the snapshot: not in the clone
    source = {'pool': 'rbd', 'image': golden, 'snapshot': 'base', 'namespace': None}
    changed, result, diff = ensure(clone, clone_from=source, data_pool='rbd2')
    assert changed
    assert result['actions'] == ['protect snapshot rbd/%s@base (parent of the clone)' % golden,
                                 'clone rbd/%s@base into image rbd/%s (features layering)' % (golden, clone)]
    assert result['image']['parent'] == source
    assert result['image']['size_bytes'] == 8 * MIB and result['image']['data_pool'] == 'rbd2'
    assert diff['after']['parent'] == source
    parent = ensure(golden)[1]['image']
    assert parent['snapshots'] == [{'name': 'base', 'size_bytes': 8 * MIB, 'protected': True,
                                    'children': ['rbd/%s' % clone]}]
    assert read(handle, clone, 0, 4096) == b'\0' * 4096
    rerun_unchanged(clone, clone_from=source, data_pool='rbd2')
    # an existing image cannot change parent
    with pytest.raises(Conflict, match='is a clone of rbd/%s@base, not of clone_from' % golden):
        ensure(clone, clone_from=dict(source, snapshot='other'))
    # a clone grown at creation, in another pool
    changed, result, _diff = ensure(clone + '2', pool='rbd2', clone_from=source, size='16M')
    assert result['actions'][-1] == 'resize image rbd2/%s2 from %d to %d bytes' % (clone, 8 * MIB, 16 * MIB)
    assert result['image']['size_bytes'] == 16 * MIB
    with pytest.raises(Conflict, match='allow_shrink'):
        ensure(clone + '3', clone_from=source, size='4M')
    # flatten
    changed, result, diff = ensure(clone, clone_from=source, data_pool='rbd2', flatten=True)
    assert changed and result['actions'] == ['flatten image rbd/%s (copy the data of rbd/%s@base)' % (clone, golden)]
    assert result['image']['parent'] is None and diff['before']['parent'] == source and diff['after']['parent'] is None
    rerun_unchanged(clone, clone_from=source, data_pool='rbd2', flatten=True)
    rerun_unchanged(clone, flatten=True)
    # a clone flattened at creation
    changed, result, _diff = ensure(clone + '4', clone_from=source, flatten=True)
    assert result['actions'][-1].startswith('flatten image') and result['image']['parent'] is None
    rerun_unchanged(clone + '4', clone_from=source, flatten=True)


def test_clone_from_errors(handle):
    golden = PREFIX + 'golden'
    _golden(golden)
    source = {'pool': 'rbd', 'image': golden, 'snapshot': 'nope', 'namespace': None}
    with pytest.raises(NotFound, match='has no snapshot nope .it has: base.'):
        ensure(PREFIX + 'c', clone_from=source)
    with pytest.raises(NotFound, match='image rbd/%snothere does not exist' % PREFIX):
        ensure(PREFIX + 'c', clone_from=dict(source, image=PREFIX + 'nothere'))
    with pytest.raises(NotFound, match='Pool nopool does not exist'):
        ensure(PREFIX + 'c', clone_from=dict(source, pool='nopool'))
    with pytest.raises(InvalidInput, match='lack layering'):
        ensure(PREFIX + 'c', clone_from=dict(source, snapshot='base'), features=['exclusive-lock'])


def test_snapshots_present_absent_protected(handle):
    name = PREFIX + 'snaps'
    snaps = [{'name': 's1', 'state': 'present', 'protected': None},
             {'name': 's2', 'state': 'present', 'protected': True}]
    changed, result, diff = ensure(name, size='8M', snapshots=snaps)
    assert result['actions'][1:] == ['create snapshot rbd/%s@s1' % name, 'create snapshot rbd/%s@s2' % name,
                                     'protect snapshot rbd/%s@s2' % name]
    assert [(s['name'], s['protected']) for s in result['image']['snapshots']] == [('s1', False), ('s2', True)]
    assert diff['after']['snapshots'] == {'s1': {'protected': False}, 's2': {'protected': True}}
    rerun_unchanged(name, size='8M', snapshots=snaps)
    # protected omitted: left as it is
    rerun_unchanged(name, snapshots=[{'name': 's2', 'state': 'present', 'protected': None}])
    toggled = [{'name': 's1', 'state': 'present', 'protected': True},
               {'name': 's2', 'state': 'present', 'protected': False}]
    changed, result, diff = ensure(name, snapshots=toggled)
    assert result['actions'] == ['protect snapshot rbd/%s@s1' % name, 'unprotect snapshot rbd/%s@s2' % name]
    assert diff['before']['snapshots'] == {'s1': {'protected': False}, 's2': {'protected': True}}
    assert diff['after']['snapshots'] == {'s1': {'protected': True}, 's2': {'protected': False}}
    rerun_unchanged(name, snapshots=toggled)
    # absent: a protected one is unprotected then removed
    gone = [{'name': 's1', 'state': 'absent', 'protected': None}, {'name': 's2', 'state': 'absent', 'protected': None}]
    changed, result, _diff = ensure(name, snapshots=gone)
    assert result['actions'] == ['unprotect snapshot rbd/%s@s1' % name, 'remove snapshot rbd/%s@s1' % name,
                                 'remove snapshot rbd/%s@s2' % name]
    assert result['image']['snapshots'] == []
    rerun_unchanged(name, snapshots=gone)
    # a snapshot with a clone can be neither unprotected nor removed
    ensure(name, snapshots=[{'name': 'p', 'state': 'present', 'protected': True}])
    ensure(PREFIX + 'kid', clone_from={'pool': 'rbd', 'image': name, 'snapshot': 'p', 'namespace': None})
    before = listing(handle)
    with pytest.raises(Busy, match='@p has clones rbd/%skid: it cannot be unprotected' % PREFIX):
        ensure(name, snapshots=[{'name': 'p', 'state': 'present', 'protected': False}])
    with pytest.raises(Busy, match='@p has clones rbd/%skid: it cannot be removed' % PREFIX):
        ensure(name, snapshots=[{'name': 'p', 'state': 'absent', 'protected': None}])
    with pytest.raises(InvalidInput, match='names snapshot p twice'):
        ensure(name, snapshots=[{'name': 'p'}, {'name': 'p'}])
    with pytest.raises(InvalidInput, match='contradicts state=absent'):
        ensure(name, snapshots=[{'name': 'p', 'state': 'absent', 'protected': True}])
    assert listing(handle) == before


def test_rollback_to(handle):
    name = PREFIX + 'rb'
    ensure(name, size='8M')
    write(handle, name, 0, b'A' * 4096)
    ensure(name, snapshots=[{'name': 's1', 'state': 'present', 'protected': None}])
    # nothing written since: no change
    rerun_unchanged(name, rollback_to='s1')
    write(handle, name, 0, b'B' * 4096)
    write(handle, name, 5 * MIB, b'C' * 512)
    before = listing(handle)
    changed, result, diff = ensure(name, rollback_to='s1', check_mode=True)
    assert changed and listing(handle) == before and read(handle, name, 0, 4096) == b'B' * 4096
    changed, result, diff = ensure(name, rollback_to='s1')
    assert changed and result['actions'] == ['roll back image rbd/%s to snapshot s1 (discards what was written since)'
                                             % name]
    assert read(handle, name, 0, 4096) == b'A' * 4096 and read(handle, name, 5 * MIB, 512) == b'\0' * 512
    rerun_unchanged(name, rollback_to='s1')
    # grown since the snapshot: rolled back to its size, unless size keeps the new one
    ensure(name, size='16M')
    changed, result, _diff = ensure(name, rollback_to='s1')
    assert changed and result['image']['size_bytes'] == 8 * MIB
    ensure(name, size='16M')
    rerun_unchanged(name, rollback_to='s1', size='16M')
    write(handle, name, 12 * MIB, b'D' * 512)
    changed, result, _diff = ensure(name, rollback_to='s1', size='16M')
    assert result['actions'] == ['roll back image rbd/%s to snapshot s1 (discards what was written since)' % name,
                                 'resize image rbd/%s from %d to %d bytes' % (name, 8 * MIB, 16 * MIB)]
    assert read(handle, name, 12 * MIB, 512) == b'\0' * 512 and result['image']['size_bytes'] == 16 * MIB
    rerun_unchanged(name, rollback_to='s1', size='16M')
    with pytest.raises(NotFound, match='has no snapshot nope to roll back to .it has: s1.'):
        ensure(name, rollback_to='nope')
    with pytest.raises(NotFound, match='does not exist, so it cannot roll back'):
        ensure(PREFIX + 'none', size='4M', rollback_to='s1')


# absent ----------------------------------------------------------------------

def test_absent_and_trash(handle):
    import rbd
    name = PREFIX + 'gone'
    changed, result, diff = ensure(name, state='absent')
    assert changed is False and result['actions'] == [] and diff == {'before': {'state': 'absent'},
                                                                     'after': {'state': 'absent'}}
    assert result['image'] == {'name': name, 'pool': 'rbd', 'namespace': None}
    ensure(name, size='4M', snapshots=[{'name': 'plain', 'state': 'present', 'protected': None}])
    changed, result, diff = ensure(name, state='absent')
    assert changed and result['actions'] == ['remove snapshot rbd/%s@plain' % name, 'remove image rbd/%s' % name]
    assert diff['before']['state'] == 'present' and diff['after'] == {'state': 'absent'}
    rerun_unchanged(name, state='absent')
    # trash with a delay
    ensure(name, size='4M', snapshots=[{'name': 'plain', 'state': 'present', 'protected': None}])
    changed, result, _diff = ensure(name, state='absent', trash=True, trash_delay=3600)
    # its snapshots go first: librbd cannot purge a trashed image that has some
    assert changed and result['actions'] == ['remove snapshot rbd/%s@plain' % name,
                                             'move image rbd/%s to the trash (deferred 3600 s)' % name]
    ctx = ioctx(handle)
    try:
        entries = [e for e in rbd.RBD().trash_list(ctx) if e['name'] == name]
        assert len(entries) == 1
        assert (entries[0]['deferment_end_time'] - entries[0]['deletion_time']).total_seconds() == 3600
        assert name not in rbd.RBD().list(ctx)
    finally:
        ctx.close()
    rerun_unchanged(name, state='absent', trash=True, trash_delay=3600)


def test_absent_blocked_by_protected_snapshots_and_children_unless_force(handle):
    name, kid = PREFIX + 'parent', PREFIX + 'child'
    ensure(name, size='8M', snapshots=[{'name': 'guard', 'state': 'present', 'protected': True}])
    before = listing(handle)
    with pytest.raises(Busy) as err:
        ensure(name, state='absent')
    assert 'protected snapshots guard' in err.value.msg and 'force=true' in err.value.msg and name in err.value.msg
    ensure(name, snapshots=[{'name': 'base', 'state': 'present', 'protected': True}])
    ensure(kid, clone_from={'pool': 'rbd', 'image': name, 'snapshot': 'base', 'namespace': None})
    write(handle, name, 0, b'P' * 4096)
    before = listing(handle)
    for trash in (False, True):
        with pytest.raises(Busy) as err:
            ensure(name, state='absent', trash=trash)
        assert 'clones rbd/%s (of @base)' % kid in err.value.msg and 'guard' in err.value.msg
    assert listing(handle) == before
    changed, result, _diff = ensure(name, state='absent', force=True, check_mode=True)
    assert changed and listing(handle) == before
    check_actions = result['actions']
    changed, result, diff = ensure(name, state='absent', force=True)
    assert result['actions'] == check_actions == [
        'unprotect snapshot rbd/%s@guard' % name, 'remove snapshot rbd/%s@guard' % name,
        'flatten clone rbd/%s (child of rbd/%s@base)' % (kid, name),
        'unprotect snapshot rbd/%s@base' % name, 'remove snapshot rbd/%s@base' % name,
        'remove image rbd/%s' % name]
    assert diff['after'] == {'state': 'absent'}
    child = ensure(kid)[1]['image']
    assert child['parent'] is None
    rerun_unchanged(name, state='absent', force=True)


def test_absent_refused_while_in_use(handle):
    import rbd
    name = PREFIX + 'busy'
    ensure(name, size='4M', snapshots=[{'name': 's', 'state': 'present', 'protected': None}])
    ctx = ioctx(handle)
    try:
        with rbd.Image(ctx, name) as user:        # a read-write open is a watcher
            user.write(b'x' * 512, 0)
            result = ensure(name)[1]
            assert len(result['image']['watchers']) == 1
            with pytest.raises(Busy, match='open by watchers'):
                ensure(name, state='absent', force=True)
            with pytest.raises(Busy, match='rolling back under a user'):
                ensure(name, rollback_to='s')
    finally:
        ctx.close()


# check mode and diff ---------------------------------------------------------------

def test_check_mode_changes_nothing(handle):
    golden, name = PREFIX + 'cm-golden', PREFIX + 'cm'
    _golden(golden)
    ensure(name, size='8M', snapshots=[{'name': 'keep', 'state': 'present', 'protected': True},
                                       {'name': 'drop', 'state': 'present', 'protected': None}])
    write(handle, name, 0, b'W' * 4096)
    source = {'pool': 'rbd', 'image': golden, 'snapshot': 'base', 'namespace': None}
    requests = [
        dict(name=PREFIX + 'cm-new', size='8M', features=['layering', 'exclusive-lock'], object_size='8M',
             data_pool='rbd2', snapshots=[{'name': 'a', 'state': 'present', 'protected': True}]),
        dict(name=PREFIX + 'cm-clone', clone_from=source, size='16M', flatten=True),
        dict(name=name, size='16M', features=['layering', 'exclusive-lock', 'object-map', 'fast-diff'],
             snapshots=[{'name': 'keep', 'state': 'present', 'protected': False},
                        {'name': 'drop', 'state': 'absent', 'protected': None},
                        {'name': 'new', 'state': 'present', 'protected': True}]),
        dict(name=name, size='4M', allow_shrink=True, rollback_to='keep'),
        dict(name=name, state='absent', force=True),
        dict(name=name, state='absent', force=True, trash=True, trash_delay=60),
    ]
    for request in requests:
        name_ = request.pop('name')
        before = listing(handle)
        changed, predicted, check_diff = ensure(name_, check_mode=True, **request)
        assert changed is True and predicted['actions'], request
        assert listing(handle) == before, request
        # the real run does what check mode said, and ends where it predicted
        changed, result, diff = ensure(name_, **request)
        assert result['actions'] == predicted['actions'], request
        assert diff == check_diff, request
        if request.get('state') != 'absent':
            expected = dict(predicted['image'], id=result['image']['id'])
            expected['snapshots'] = [dict(s, children=r['children']) for s, r in
                                     zip(predicted['image']['snapshots'], result['image']['snapshots'])]
            assert result['image'] == expected, request
            rerun_unchanged(name_, **request)
        else:
            # restore the image for the next request
            ensure(name_, size='8M')


def test_diff_keys(handle):
    name = PREFIX + 'diff'
    _changed, _result, diff = ensure(name, size='4M')
    assert sorted(diff) == ['after', 'before']
    assert sorted(diff['after']) == ['data_pool', 'features', 'object_size_bytes', 'parent', 'size_bytes',
                                     'snapshots', 'state']


# bad input ---------------------------------------------------------------------

@pytest.mark.parametrize('option, value, words', [
    ('name', 'bad/name', ['image name', 'bad/name']),
    ('name', 'bad@snap', ['image name']),
    ('name', '.hidden', ['image name']),
    ('name', 'x' * 201, ['image name', '200']),
    ('name', 'trail\n', ['image name', 'newline']),
    ('pool', 'no/pool', ['pool', 'no/pool']),
    ('namespace', 'a b', ['namespace']),
    ('data_pool', 'd:p', ['data_pool']),
    ('rollback_to', 'a/b', ['rollback_to']),
    ('snapshots', [{'name': 'x@y'}], ['snapshot name', 'x@y']),
    ('clone_from', {'pool': 'rbd', 'image': 'a b', 'snapshot': 's'}, ['clone_from.image']),
    ('clone_from', {'pool': 'rbd', 'image': 'a', 'snapshot': 's/x'}, ['clone_from.snapshot']),
    ('size', '-1G', ['negative']),
    ('size', '10Q', ['unknown unit']),
    ('object_size', '3M', ['power of two']),
    ('object_size', '64M', ['power of two']),
    ('trash_delay', -1, ['negative']),
])
def test_bad_names_and_values(handle, option, value, words):
    before = listing(handle)
    kwargs = {'size': '4M', option: value}
    name = kwargs.pop('name', PREFIX + 'bad')
    with pytest.raises(InvalidInput) as err:
        ensure(name, **kwargs)
    for word in words:
        assert word in err.value.msg, (word, err.value.msg)
    assert listing(handle) == before


def test_missing_size_and_missing_pool(handle):
    with pytest.raises(InvalidInput, match='does not exist and size is not given'):
        ensure(PREFIX + 'nosize')
    with pytest.raises(NotFound, match='Pool nopool does not exist.*ceph osd pool create nopool'):
        ensure(PREFIX + 'x', pool='nopool', size='4M')
    with pytest.raises(NotFound, match='Pool nopool does not exist'):
        ensure(PREFIX + 'x', size='4M', data_pool='nopool')


def test_bad_conf_path(tmp_path):
    with pytest.raises(InvalidInput, match='ceph_conf %s/missing.conf does not exist' % tmp_path):
        ensure(PREFIX + 'x', size='4M', ceph_conf=str(tmp_path / 'missing.conf'))
    with pytest.raises(InvalidInput, match='ceph_keyring .* does not exist'):
        ensure(PREFIX + 'x', size='4M', ceph_keyring=str(tmp_path / 'missing.keyring'))


def _random_key():
    # a well-formed cephx secret (type AES, created now, 16 random bytes) that the cluster does not know
    return base64.b64encode(struct.pack('<HIIH', 1, int(time.time()), 0, 16) + os.urandom(16)).decode('ascii')


def test_wrong_key(tmp_path):
    keyring = tmp_path / 'wrong.keyring'
    keyring.write_text(u'[client.admin]\n\tkey = %s\n' % _random_key())
    before = time.time()
    with pytest.raises(StorageError) as err:
        ensure(PREFIX + 'x', size='4M', ceph_keyring=str(keyring), connect_timeout=5)
    assert time.time() - before < 30
    assert 'refused the key' in err.value.msg and 'ceph_keyring' in err.value.msg, err.value.msg
    assert err.value.details.get('reason') == 'auth'


def test_monitor_that_does_not_answer(tmp_path):
    conf = tmp_path / 'dead.conf'
    conf.write_text(u'[global]\nmon_host = 127.0.0.1:1\nauth_client_required = cephx\n')
    keyring = tmp_path / 'some.keyring'
    keyring.write_text(u'[client.admin]\n\tkey = %s\n' % _random_key())
    started = time.time()
    with pytest.raises(StorageError) as err:
        ensure(PREFIX + 'x', size='4M', ceph_conf=str(conf), ceph_keyring=str(keyring), connect_timeout=2)
    took = time.time() - started
    assert took < 10, took
    assert 'no monitor answered within 2 s' in err.value.msg and 'mon_host' in err.value.msg, err.value.msg


def test_missing_bindings_message():
    """The core in a Python where `import rados` fails."""
    script = '\n'.join([
        'import json, sys',
        'sys.path[:0] = %s' % json.dumps([p for p in sys.path if p]),
        "sys.modules['rados'] = None",
        "sys.modules['rbd'] = None",
        'from ansible_collections.blockyard.storage.plugins.module_utils import rbd_images',
        'from ansible_collections.blockyard.storage.plugins.module_utils.errors import MissingDependency',
        'try:',
        "    rbd_images.ensure_image({'name': 'x', 'pool': 'rbd', 'size': '4M'}, False)",
        'except MissingDependency as exc:',
        '    print(json.dumps(exc.to_fail()))',
    ])
    res = subprocess.run([sys.executable, '-c', script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True, check=False, cwd='/')
    assert res.returncode == 0, res.stderr
    failed = json.loads(res.stdout.strip().splitlines()[-1])
    assert 'python3-rados' in failed['msg'] and 'python3-rbd' in failed['msg'], failed
    assert 'rbd_image' in failed['msg']
