# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The core of blockyard.storage.rbd_image: one RBD image (create, clone,
resize, features, snapshots, rollback, flatten, delete or trash), through
the `rados`/`rbd` Python bindings. Plan first (read the image, list the
actions), then act; check mode returns the plan and touches nothing."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.blockyard.storage.plugins.module_utils import ceph, naming
from ansible_collections.blockyard.storage.plugins.module_utils.errors import (
    Busy, Conflict, InvalidInput, NotFound, Unsupported)
from ansible_collections.blockyard.storage.plugins.module_utils.plan import Plan

# Ceph's feature names and bits (librbd/Features.h); spelled out so that a
# binding without features_from_string works too
FEATURES = {
    'layering': 1, 'striping': 2, 'exclusive-lock': 4, 'object-map': 8, 'fast-diff': 16,
    'deep-flatten': 32, 'journaling': 64, 'data-pool': 128, 'operations': 256, 'migrating': 512,
    'non-primary': 1024,
}
# set by librbd itself, never asked for: not compared
IMPLICIT = frozenset(['data-pool', 'operations', 'migrating', 'non-primary'])
REQUESTABLE = sorted(set(FEATURES) - IMPLICIT)
# what update_features can change on an existing image (Ceph's RBD_FEATURES_MUTABLE;
# deep-flatten can only be disabled)
TOGGLE = frozenset(['exclusive-lock', 'object-map', 'fast-diff', 'journaling'])
DEPENDS = {'object-map': 'exclusive-lock', 'fast-diff': 'object-map', 'journaling': 'exclusive-lock'}
MIN_ORDER, MAX_ORDER = 12, 25       # 4 KiB .. 32 MiB objects
CHUNK = 4 * 1024 * 1024             # rollback_to compares data in pieces of this size

ARGS = dict(
    name=dict(type='str', required=True),
    pool=dict(type='str', required=True),
    namespace=dict(type='str'),
    state=dict(type='str', default='present', choices=['present', 'absent']),
    size=dict(type='raw'),
    features=dict(type='list', elements='str', default=['layering']),
    object_size=dict(type='raw'),
    data_pool=dict(type='str'),
    clone_from=dict(type='dict', options=dict(
        pool=dict(type='str', required=True),
        namespace=dict(type='str'),
        image=dict(type='str', required=True),
        snapshot=dict(type='str', required=True),
    )),
    flatten=dict(type='bool', default=False),
    snapshots=dict(type='list', elements='dict', options=dict(
        name=dict(type='str', required=True),
        state=dict(type='str', default='present', choices=['present', 'absent']),
        protected=dict(type='bool'),
    )),
    rollback_to=dict(type='str'),
    trash=dict(type='bool', default=False),
    trash_delay=dict(type='int', default=0),
    allow_shrink=dict(type='bool', default=False),
    force=dict(type='bool', default=False),
)


def argument_spec():
    spec = dict((k, dict(v)) for k, v in ARGS.items())
    spec.update((k, dict(v)) for k, v in ceph.CONNECTION_ARGS.items())
    return spec


def _name(value, what, pattern=ceph.IMAGE_RE):
    # check_name uses match(), whose "$" also matches before a final newline
    if isinstance(value, str) and ('\n' in value or '\x00' in value):
        raise InvalidInput('%s %r is not valid: it contains a newline or NUL byte; use letters, digits, "_", "-" '
                           'and ".".' % (what, value))
    return ceph.check_name(value, what, pattern)


def _spec(pool, namespace, image, snap=None):
    text = '%s/%s%s' % (pool, namespace + '/' if namespace else '', image)
    return text + ('@' + snap if snap else '')


class Request:
    """The checked options (nothing is touched before this succeeds)."""

    def __init__(self, params):
        p = params
        self.name = _name(p['name'], 'image name')
        self.pool = _name(p['pool'], 'pool', ceph.POOL_RE)
        self.namespace = _name(p['namespace'], 'namespace', ceph.POOL_RE) if p.get('namespace') else None
        self.spec = _spec(self.pool, self.namespace, self.name)
        self.state = p.get('state') or 'present'
        self.size = naming.parse_size(p['size'], 'size of image %s' % self.spec) if p.get('size') is not None else None
        self.features = self._features(p.get('features'))
        self.order = self._order(p.get('object_size'))
        self.data_pool = _name(p['data_pool'], 'data_pool', ceph.POOL_RE) if p.get('data_pool') else None
        self.clone_from = None
        if p.get('clone_from'):
            c = p['clone_from']
            for key in ('pool', 'image', 'snapshot'):
                if not c.get(key):
                    raise InvalidInput('clone_from of image %s needs %s (a dict {pool, image, snapshot}).'
                                       % (self.spec, key))
            self.clone_from = {
                'pool': _name(c['pool'], 'clone_from.pool', ceph.POOL_RE),
                'namespace': _name(c['namespace'], 'clone_from.namespace', ceph.POOL_RE) if c.get('namespace') else None,
                'image': _name(c['image'], 'clone_from.image'),
                'snapshot': _name(c['snapshot'], 'clone_from.snapshot'),
            }
            if 'layering' not in self.features:
                raise InvalidInput('Image %s is a clone (clone_from) but features %s lack layering: a clone needs it; '
                                   'add layering to features.' % (self.spec, sorted(self.features)))
            if self.clone_from['pool'] == self.pool and self.clone_from['namespace'] == self.namespace and \
                    self.clone_from['image'] == self.name:
                raise InvalidInput('Image %s cannot be a clone of itself: clone_from names another image.' % self.spec)
        self.flatten = bool(p.get('flatten'))
        self.snapshots = []
        seen = set()
        for entry in p.get('snapshots') or []:
            if not isinstance(entry, dict) or not entry.get('name'):
                raise InvalidInput('snapshots of image %s: every entry needs a name ({name, state, protected}), got %r.'
                                   % (self.spec, entry))
            snap = _name(entry['name'], 'snapshot name')
            if snap in seen:
                raise InvalidInput('snapshots of image %s names snapshot %s twice: list each snapshot once.'
                                   % (self.spec, snap))
            seen.add(snap)
            state = entry.get('state') or 'present'
            if state not in ('present', 'absent'):
                raise InvalidInput('snapshot %s of image %s: state %r must be present or absent.' % (snap, self.spec, state))
            protected = entry.get('protected')
            if state == 'absent' and protected:
                raise InvalidInput('snapshot %s of image %s: protected=true contradicts state=absent; drop one.'
                                   % (snap, self.spec))
            self.snapshots.append({'name': snap, 'state': state, 'protected': protected})
        self.rollback_to = _name(p['rollback_to'], 'rollback_to (snapshot name)') if p.get('rollback_to') else None
        if self.rollback_to and any(s['name'] == self.rollback_to and s['state'] == 'absent' for s in self.snapshots):
            raise InvalidInput('Image %s: rollback_to %s names a snapshot that snapshots asks to remove: keep it or '
                               'drop rollback_to.' % (self.spec, self.rollback_to))
        self.trash = bool(p.get('trash'))
        self.trash_delay = int(p.get('trash_delay') or 0)
        if self.trash_delay < 0:
            raise InvalidInput('trash_delay %d of image %s is negative: give seconds >= 0.' % (self.trash_delay, self.spec))
        self.allow_shrink = bool(p.get('allow_shrink'))
        self.force = bool(p.get('force'))

    def _features(self, names):
        names = ['layering'] if names is None else list(names)
        unknown = [n for n in names if n not in FEATURES]
        if unknown:
            raise InvalidInput('Image %s: unknown features %s: use some of %s.'
                               % (self.spec, ', '.join(map(str, unknown)), ', '.join(REQUESTABLE)))
        implicit = [n for n in names if n in IMPLICIT]
        if implicit:
            raise InvalidInput('Image %s: features %s are set by Ceph itself (data-pool comes with data_pool): remove '
                               'them from features.' % (self.spec, ', '.join(implicit)))
        wanted = set(names)
        for feature, needs in sorted(DEPENDS.items()):
            if feature in wanted and needs not in wanted:
                raise InvalidInput('Image %s: feature %s needs %s: add %s to features.'
                                   % (self.spec, feature, needs, needs))
        return wanted

    def _order(self, value):
        if value is None or value == '':
            return None
        size = naming.parse_size(value if not isinstance(value, int) else '%dB' % value,
                                 'object_size of image %s' % self.spec)
        order = size.bit_length() - 1
        if size != 1 << order or not MIN_ORDER <= order <= MAX_ORDER:
            raise InvalidInput('object_size %r of image %s must be a power of two from 4K to 32M (e.g. 4M).'
                               % (value, self.spec))
        return order


# reading ---------------------------------------------------------------

def _feature_names(bits):
    return sorted(n for n, bit in FEATURES.items() if bits & bit)


def _open(ioctx, name, read_only=True, what=None):
    try:
        return ceph.rbd.Image(ioctx, name, read_only=read_only)
    except ceph.rbd.ImageNotFound:
        return None
    except ceph.rbd.Error as exc:
        raise ceph.rbd_error(exc, 'Opening image', what or name)


def _children(image):
    out = []
    for child in image.list_children2():
        out.append({'pool': child['pool'], 'namespace': child.get('pool_namespace') or None, 'image': child['image'],
                    'id': child.get('id'), 'trash': bool(child.get('trash'))})
    return out


def _child_spec(child):
    return _spec(child['pool'], child['namespace'], child['image']) + (' (in the trash)' if child['trash'] else '')


def read_image(cluster, ioctx, req):
    """The summary of the image (the `image` result), or None when absent."""
    image = _open(ioctx, req.name, what=req.spec)
    if image is None:
        return None
    try:
        stat = image.stat()
        data_pool = None
        bits = image.features()
        if bits & FEATURES['data-pool']:
            pool_id = image.data_pool_id()
            data_pool = cluster.handle.pool_reverse_lookup(pool_id) if pool_id >= 0 else None
        try:
            spec = image.get_parent_image_spec()
            parent = {'pool': spec['pool_name'], 'namespace': spec.get('pool_namespace') or None,
                      'image': spec['image_name'], 'snapshot': spec['snap_name']}
        except ceph.rbd.ImageNotFound:
            parent = None
        snaps = []
        for snap in image.list_snaps():
            if snap.get('namespace', 0) not in (0, None):    # group/trash/mirror snapshots are not the user's
                continue
            image.set_snap(snap['name'])
            try:
                children = [_child_spec(c) for c in _children(image)]
            finally:
                image.set_snap(None)
            snaps.append({'name': snap['name'], 'size_bytes': snap['size'],
                          'protected': bool(image.is_protected_snap(snap['name'])), 'children': sorted(children)})
        return {
            'name': req.name, 'pool': req.pool, 'namespace': req.namespace, 'size_bytes': stat['size'],
            'features': _feature_names(bits), 'object_size_bytes': stat['obj_size'], 'order': stat['order'],
            'data_pool': data_pool, 'parent': parent, 'snapshots': snaps,
            'watchers': sorted(w['addr'] for w in image.watchers_list()), 'id': image.id(),
        }
    except ceph.rbd.Error as exc:
        raise ceph.rbd_error(exc, 'Reading image', req.spec)
    finally:
        image.close()


def _diff_view(summary):
    """What the diff shows: the managed facts (not the id or the watchers)."""
    if summary is None:
        return {'state': 'absent'}
    view = dict((k, summary[k]) for k in ('size_bytes', 'features', 'object_size_bytes', 'data_pool', 'parent'))
    view['state'] = 'present'
    view['snapshots'] = dict((s['name'], {'protected': s['protected']}) for s in summary['snapshots'])
    return view


def _written_since(ioctx, req, snapshot, length):
    """Whether the image's data differs from `snapshot`'s: the extents
    diff_iterate reports as changed since it, compared byte for byte (a
    rollback rewrites the objects it restores, so after one every extent is
    reported though the data is the snapshot's)."""
    extents = []

    def seen(offset, size, _exists):
        extents.append((offset, size))
        return 0
    head = _open(ioctx, req.name, what=req.spec)
    try:
        head.diff_iterate(0, length, snapshot, seen)
        if not extents:
            return False
        snap = ceph.rbd.Image(ioctx, req.name, snapshot=snapshot, read_only=True)
        try:
            snap_size = snap.size()
            for offset, size in extents:
                end = offset + size
                while offset < end:
                    chunk = min(end - offset, CHUNK)
                    old = snap.read(offset, chunk) if offset < snap_size else b''
                    old += b'\0' * (chunk - len(old))
                    if head.read(offset, chunk) != old:
                        return True
                    offset += chunk
        finally:
            snap.close()
    except ceph.rbd.Error as exc:
        raise ceph.rbd_error(exc, 'Comparing with snapshot %s' % snapshot, req.spec)
    finally:
        head.close()
    return False


# acting ------------------------------------------------------------------

def _image_op(ioctx, spec, name, doing, func):
    image = ceph.rbd.Image(ioctx, name)
    try:
        func(image)
    except ceph.rbd.Error as exc:
        raise ceph.rbd_error(exc, doing, spec)
    finally:
        image.close()


def _create(ioctx, req, size):
    try:
        ceph.rbd.RBD().create(ioctx, req.name, size, order=req.order, old_format=False,
                              features=sum(FEATURES[f] for f in req.features), data_pool=req.data_pool)
    except ceph.rbd.Error as exc:
        raise ceph.rbd_error(exc, 'Creating image', req.spec)


def _clone(cluster, ioctx, req):
    c = req.clone_from
    p_ioctx = cluster.ioctx(c['pool'], c['namespace'])
    try:
        ceph.rbd.RBD().clone(p_ioctx, c['image'], c['snapshot'], ioctx, req.name,
                             features=sum(FEATURES[f] for f in req.features), order=req.order,
                             data_pool=req.data_pool)
    except ceph.rbd.Error as exc:
        raise ceph.rbd_error(exc, 'Cloning %s into image' % _spec(c['pool'], c['namespace'], c['image'], c['snapshot']),
                             req.spec)


def _remove_new(ioctx, name):
    try:
        ceph.rbd.RBD().remove(ioctx, name)
    except ceph.rbd.Error:
        pass


def _flatten_child(cluster, child):
    c_ioctx = cluster.ioctx(child['pool'], child['namespace'])
    try:
        if child['trash']:
            image = ceph.rbd.Image(c_ioctx, image_id=child['id'])
        else:
            image = ceph.rbd.Image(c_ioctx, child['image'])
        try:
            image.flatten()
        finally:
            image.close()
    except ceph.rbd.Error as exc:
        raise ceph.rbd_error(exc, 'Flattening the clone', _child_spec(child))


def _remove(ioctx, req):
    try:
        ceph.rbd.RBD().remove(ioctx, req.name)
    except ceph.rbd.Error as exc:
        raise ceph.rbd_error(exc, 'Removing image', req.spec)


def _trash(ioctx, req):
    try:
        ceph.rbd.RBD().trash_move(ioctx, req.name, req.trash_delay)
    except ceph.rbd.Error as exc:
        raise ceph.rbd_error(exc, 'Moving image %s to the trash' % req.spec, '(trash_delay %d s)' % req.trash_delay)


# planning ------------------------------------------------------------------

def _children_of(cluster, ioctx, req, snapshot):
    image = _open(ioctx, req.name, what=req.spec)
    try:
        image.set_snap(snapshot)
        return _children(image)
    finally:
        image.close()


def _plan_absent(cluster, ioctx, req, before, plan):
    if before is None:
        return None
    protected = [s['name'] for s in before['snapshots'] if s['protected']]
    with_children = dict((s['name'], s['children']) for s in before['snapshots'] if s['children'])
    if (protected or with_children) and not req.force:
        parts = []
        if protected:
            parts.append('protected snapshots %s' % ', '.join(protected))
        if with_children:
            parts.append('clones %s' % '; '.join('%s (of @%s)' % (', '.join(c), s) for s, c in sorted(with_children.items())))
        raise Busy('Image %s has %s: refusing to %s it. Remove or flatten the clones and unprotect the snapshots '
                   'first, or set force=true to flatten the clones, unprotect and remove the snapshots, then %s the '
                   'image.' % (req.spec, ' and '.join(parts), 'trash' if req.trash else 'remove',
                               'trash' if req.trash else 'remove'), image=req.spec)
    if before['watchers']:
        raise Busy('Image %s is open by watchers %s: refusing to %s it. Unmap it (rbd unmap / rbd-nbd unmap) or stop '
                   'the clients (guests, exports) that use it, then run again.'
                   % (req.spec, ', '.join(before['watchers']), 'trash' if req.trash else 'remove'), image=req.spec)
    # the trash keeps no snapshots either: librbd cannot purge an image that has some
    for snap in before['snapshots']:
        for child in _children_of(cluster, ioctx, req, snap['name']):
            plan.add('flatten clone %s (child of %s@%s)' % (_child_spec(child), req.spec, snap['name']),
                     _flatten_child, cluster, child)
        if snap['protected']:
            plan.add('unprotect snapshot %s@%s' % (req.spec, snap['name']), _image_op, ioctx, req.spec, req.name,
                     'Unprotecting snapshot %s of' % snap['name'],
                     lambda image, s=snap['name']: image.unprotect_snap(s))
        plan.add('remove snapshot %s@%s' % (req.spec, snap['name']), _image_op, ioctx, req.spec, req.name,
                 'Removing snapshot %s of' % snap['name'], lambda image, s=snap['name']: image.remove_snap(s))
    if req.trash:
        plan.add('move image %s to the trash (deferred %d s)' % (req.spec, req.trash_delay), _trash, ioctx, req)
    else:
        plan.add('remove image %s' % req.spec, _remove, ioctx, req)
    return None


def _check_parent(cluster, req):
    """The size of clone_from's snapshot, and whether it is protected."""
    c = req.clone_from
    what = _spec(c['pool'], c['namespace'], c['image'], c['snapshot'])
    try:
        p_ioctx = cluster.ioctx(c['pool'], c['namespace'])
    except NotFound as exc:
        raise NotFound('clone_from %s of image %s: %s' % (what, req.spec, exc.msg))
    image = _open(p_ioctx, c['image'], what=what)
    if image is None:
        raise NotFound('clone_from %s of image %s: image %s does not exist: create it and its snapshot %s first.'
                       % (what, req.spec, _spec(c['pool'], c['namespace'], c['image']), c['snapshot']))
    try:
        snaps = dict((s['name'], s['size']) for s in image.list_snaps())
        if c['snapshot'] not in snaps:
            raise NotFound('clone_from %s of image %s: the parent has no snapshot %s (it has: %s): create it '
                           'first.' % (what, req.spec, c['snapshot'], ', '.join(sorted(snaps)) or 'none'))
        if not image.features() & FEATURES['layering']:
            raise Unsupported('clone_from %s of image %s: the parent lacks the layering feature, so it cannot be '
                              'cloned: copy it instead.' % (what, req.spec))
        return snaps[c['snapshot']], bool(image.is_protected_snap(c['snapshot']))
    finally:
        image.close()


def _plan_create(cluster, ioctx, req, plan):
    features = set(req.features)
    if req.data_pool:
        cluster.ioctx(req.data_pool)     # a clear error when it does not exist
        features.add('data-pool')
    order = req.order or 22
    parent = None
    if req.clone_from:
        c = req.clone_from
        parent_size, protected = _check_parent(cluster, req)
        what = _spec(c['pool'], c['namespace'], c['image'], c['snapshot'])
        if not protected:
            plan.add('protect snapshot %s (parent of the clone)' % what, _protect_parent, cluster, req)
        plan.add('clone %s into image %s (features %s)' % (what, req.spec, ', '.join(sorted(req.features))),
                 _clone, cluster, ioctx, req)
        plan.on_failure(_remove_new, ioctx, req.name)
        size = parent_size
        parent = dict(c)
        if req.size is not None and req.size != size:
            if req.size < size and not req.allow_shrink:
                raise Conflict('Image %s would be a clone of %s, %d bytes, larger than size %d bytes: set '
                               'allow_shrink=true to shrink it, or give a size >= %d.'
                               % (req.spec, what, size, req.size, size))
            plan.add('resize image %s from %d to %d bytes' % (req.spec, size, req.size), _image_op, ioctx, req.spec,
                     req.name, 'Resizing', lambda image: image.resize(req.size, allow_shrink=True))
            size = req.size
        if req.flatten:
            plan.add('flatten image %s (copy the data of %s)' % (req.spec, what), _image_op, ioctx, req.spec,
                     req.name, 'Flattening', lambda image: image.flatten())
            parent = None
    else:
        if req.size is None:
            raise InvalidInput('Image %s does not exist and size is not given: give its size (e.g. size: 10G) to '
                               'create it, or clone_from to clone it.' % req.spec)
        size = req.size
        plan.add('create image %s of %d bytes (features %s, object size %d%s)'
                 % (req.spec, size, ', '.join(sorted(req.features)), 1 << order,
                    ', data pool %s' % req.data_pool if req.data_pool else ''), _create, ioctx, req, size)
        plan.on_failure(_remove_new, ioctx, req.name)
    return {'name': req.name, 'pool': req.pool, 'namespace': req.namespace, 'size_bytes': size,
            'features': sorted(features), 'object_size_bytes': 1 << order, 'order': order,
            'data_pool': req.data_pool, 'parent': parent, 'snapshots': [], 'watchers': [], 'id': None}


def _protect_parent(cluster, req):
    c = req.clone_from
    p_ioctx = cluster.ioctx(c['pool'], c['namespace'])
    try:
        image = ceph.rbd.Image(p_ioctx, c['image'])
        try:
            if not image.is_protected_snap(c['snapshot']):
                image.protect_snap(c['snapshot'])
        finally:
            image.close()
    except ceph.rbd.Error as exc:
        raise ceph.rbd_error(exc, 'Protecting snapshot %s of' % c['snapshot'], _spec(c['pool'], c['namespace'], c['image']))


def _plan_existing(cluster, ioctx, req, before, plan):
    after = dict(before, snapshots=[dict(s) for s in before['snapshots']])
    spec = req.spec
    # fixed at creation: say so rather than silently ignore
    if req.order is not None and req.order != before['order']:
        raise Conflict('Image %s has object size %d bytes (order %d); object_size asks for %d: the object size is '
                       'fixed at creation. Drop object_size or recreate the image (e.g. rbd deep-copy).'
                       % (spec, before['object_size_bytes'], before['order'], 1 << req.order))
    if req.data_pool and req.data_pool != before['data_pool']:
        raise Conflict('Image %s has data pool %s; data_pool asks for %s: the data pool is fixed at creation. Drop '
                       'data_pool or recreate the image (rbd deep-copy --data-pool).'
                       % (spec, before['data_pool'] or '(none: data in %s)' % req.pool, req.data_pool))
    if req.clone_from and before['parent'] is not None:
        wanted = dict(req.clone_from)
        if wanted != before['parent']:
            p = before['parent']
            raise Conflict('Image %s is a clone of %s, not of clone_from %s: an image cannot change its parent. Name '
                           'its real parent, or another image.'
                           % (spec, _spec(p['pool'], p['namespace'], p['image'], p['snapshot']),
                              _spec(wanted['pool'], wanted['namespace'], wanted['image'], wanted['snapshot'])))
    snaps = dict((s['name'], s) for s in before['snapshots'])

    # rollback first: it restores the snapshot's size, which `size` may then change
    if req.rollback_to:
        snap = snaps.get(req.rollback_to)
        if snap is None:
            raise NotFound('Image %s has no snapshot %s to roll back to (it has: %s): name an existing snapshot.'
                           % (spec, req.rollback_to, ', '.join(sorted(snaps)) or 'none'))
        # idempotent: no rollback when the data the task leaves (up to the
        # size it leaves) is already the snapshot's
        current, snap_size = before['size_bytes'], snap['size_bytes']
        if req.size is None:
            needed = current != snap_size or _written_since(ioctx, req, req.rollback_to, current)
        else:
            needed = current < req.size and current < snap_size or \
                _written_since(ioctx, req, req.rollback_to, min(current, req.size))
        if needed:
            if before['watchers']:
                raise Busy('Image %s is open by watchers %s: rolling back under a user corrupts its data. Stop the '
                           'clients (unmap it) first.' % (spec, ', '.join(before['watchers'])), image=spec)
            plan.add('roll back image %s to snapshot %s (discards what was written since)' % (spec, req.rollback_to),
                     _image_op, ioctx, spec, req.name, 'Rolling back to snapshot %s' % req.rollback_to,
                     lambda image: image.rollback_to_snap(req.rollback_to))
            after['size_bytes'] = snap['size_bytes']

    if req.size is not None and req.size != after['size_bytes']:
        if req.size < after['size_bytes'] and not req.allow_shrink:
            raise Conflict('Image %s is %d bytes (%s); size asks for %d bytes (%s), which shrinks it and loses the '
                           'data past the new end: set allow_shrink=true to shrink it, or give a size >= %d.'
                           % (spec, after['size_bytes'], naming.human_size(after['size_bytes']), req.size,
                              naming.human_size(req.size), after['size_bytes']))
        plan.add('resize image %s from %d to %d bytes' % (spec, after['size_bytes'], req.size), _image_op, ioctx, spec,
                 req.name, 'Resizing', lambda image: image.resize(req.size, allow_shrink=True))
        after['size_bytes'] = req.size

    _plan_features(ioctx, req, before, after, plan)

    if req.flatten and before['parent'] is not None:
        p = before['parent']
        plan.add('flatten image %s (copy the data of %s)' % (spec, _spec(p['pool'], p['namespace'], p['image'],
                                                                         p['snapshot'])),
                 _image_op, ioctx, spec, req.name, 'Flattening', lambda image: image.flatten())
        after['parent'] = None
    return after


def _plan_features(ioctx, req, before, after, plan):
    spec = req.spec
    have = set(before['features']) - IMPLICIT
    enable = sorted(req.features - have)
    disable = sorted(have - req.features)
    fixed = [f for f in enable if f not in TOGGLE] + [f for f in disable if f not in TOGGLE | set(['deep-flatten'])]
    if fixed:
        raise Unsupported('Image %s has features %s; features asks for %s: %s cannot be changed on an existing image '
                          '(only exclusive-lock, object-map, fast-diff and journaling can be toggled, deep-flatten only '
                          'disabled). Keep them as they are, or recreate the image.'
                          % (spec, ', '.join(sorted(have)), ', '.join(sorted(req.features)), ', '.join(fixed)))
    # librbd toggles object-map and fast-diff together on an existing image
    if 'object-map' in enable and 'fast-diff' not in req.features or \
            'fast-diff' in disable and 'object-map' in req.features:
        raise Unsupported('Image %s has features %s; features asks for %s: on an existing image Ceph enables and '
                          'disables object-map and fast-diff together. Ask for both or neither.'
                          % (spec, ', '.join(sorted(have)), ', '.join(sorted(req.features))))
    if disable:
        plan.add('disable features %s of image %s' % (', '.join(disable), spec), _image_op, ioctx, spec, req.name,
                 'Disabling features %s of' % ', '.join(disable),
                 lambda image: image.update_features(sum(FEATURES[f] for f in disable), False))
    if enable:
        plan.add('enable features %s of image %s' % (', '.join(enable), spec), _image_op, ioctx, spec, req.name,
                 'Enabling features %s of' % ', '.join(enable),
                 lambda image: image.update_features(sum(FEATURES[f] for f in enable), True))
    if enable or disable:
        after['features'] = sorted((set(before['features']) - set(disable)) | set(enable))


def _plan_snapshots(cluster, ioctx, req, after, plan, exists):
    spec = req.spec
    snaps = dict((s['name'], s) for s in after['snapshots'])
    for entry in req.snapshots:
        name = entry['name']
        have = snaps.get(name)
        if entry['state'] == 'present':
            if have is None:
                plan.add('create snapshot %s@%s' % (spec, name), _image_op,
                         ioctx, spec, req.name, 'Creating snapshot %s of' % name, lambda image, s=name: image.create_snap(s))
                have = {'name': name, 'size_bytes': after['size_bytes'], 'protected': False, 'children': []}
                after['snapshots'].append(have)
            if entry['protected'] is True and not have['protected']:
                plan.add('protect snapshot %s@%s' % (spec, name), _image_op,
                         ioctx, spec, req.name, 'Protecting snapshot %s of' % name, lambda image, s=name: image.protect_snap(s))
                have['protected'] = True
            elif entry['protected'] is False and have['protected']:
                if have['children']:
                    raise Busy('Snapshot %s@%s has clones %s: it cannot be unprotected. Flatten or remove the clones '
                               'first, or keep it protected.' % (spec, name, ', '.join(have['children'])),
                               snapshot=name)
                plan.add('unprotect snapshot %s@%s' % (spec, name), _image_op,
                         ioctx, spec, req.name, 'Unprotecting snapshot %s of' % name, lambda image, s=name: image.unprotect_snap(s))
                have['protected'] = False
        elif have is not None:
            if have['children']:
                raise Busy('Snapshot %s@%s has clones %s: it cannot be removed. Flatten or remove the clones first.'
                           % (spec, name, ', '.join(have['children'])), snapshot=name)
            if req.rollback_to == name:
                raise InvalidInput('Image %s: snapshot %s is both rollback_to and to be removed.' % (spec, name))
            if have['protected']:
                plan.add('unprotect snapshot %s@%s' % (spec, name), _image_op,
                         ioctx, spec, req.name, 'Unprotecting snapshot %s of' % name, lambda image, s=name: image.unprotect_snap(s))
            plan.add('remove snapshot %s@%s' % (spec, name), _image_op,
                     ioctx, spec, req.name, 'Removing snapshot %s of' % name, lambda image, s=name: image.remove_snap(s))
            after['snapshots'] = [s for s in after['snapshots'] if s['name'] != name]
            snaps.pop(name)


def ensure_image(params, check_mode):
    """The rbd_image module: (changed, result, diff)."""
    ceph.require_bindings('blockyard.storage.rbd_image')
    req = Request(params)
    cluster = ceph.Cluster.get(params)
    # the Cluster owns its ioctxs (one per pool and namespace): never closed here
    ioctx = cluster.ioctx(req.pool, req.namespace)
    before = read_image(cluster, ioctx, req)
    plan = Plan('rbd_image')
    if req.state == 'absent':
        after = _plan_absent(cluster, ioctx, req, before, plan)
    else:
        if before is None:
            if req.rollback_to:
                raise NotFound('Image %s does not exist, so it cannot roll back to snapshot %s: create it first '
                               '(drop rollback_to for the first run).' % (req.spec, req.rollback_to))
            after = _plan_create(cluster, ioctx, req, plan)
        else:
            after = _plan_existing(cluster, ioctx, req, before, plan)
        _plan_snapshots(cluster, ioctx, req, after, plan, before is not None)
    if plan and not check_mode:
        plan.execute()
        after = read_image(cluster, ioctx, req) if req.state == 'present' else None
    elif not plan:
        after = before if req.state == 'present' else None
    image = after if after is not None else {'name': req.name, 'pool': req.pool, 'namespace': req.namespace}
    result = {'image': image, 'actions': plan.actions}
    if plan.warnings:
        result['warnings'] = plan.warnings
    return bool(plan), result, {'before': _diff_view(before), 'after': _diff_view(after)}
