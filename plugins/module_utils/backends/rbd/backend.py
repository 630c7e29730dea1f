# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The `rbd` backend: volumes as RBD images of a Ceph pool (and namespace),
with Cinder's RBD semantics.

- a volume is the image ``volume-<name>``, raw and thin; its snapshots are
  RBD snapshots ``snapshot-<snap>``, protected (so that volumes can be
  cloned from them);
- a copy of a volume in the same cluster is a clone of the snapshot
  ``volume-<dest>.clone_snap`` of its source, flattened once the chain of
  parents reaches max_clone_depth; a volume from a snapshot is a clone of
  that snapshot (flattened with flatten_volume_from_snapshot); copies from
  or to another backend go through qemu-img and the two data references;
- a snapshot is deleted after flattening the volumes cloned from it; a
  volume whose copies still depend on it goes to the pool's trash, and is
  removed there when its last copy goes;
- revert is rollback_to_snap (any snapshot), then a resize back to the
  volume's size; extend is resize.

Operations of several steps write a journal in the cluster first
(bookkeeping.Journal) and are completed (deletes, reverts, snapshot
deletes) or undone (creates, copies, snapshot creates) by the next run after
a crash."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.blockyard.storage.plugins.module_utils import ceph, naming, qemu_img
from ansible_collections.blockyard.storage.plugins.module_utils.backends.base import Backend
from ansible_collections.blockyard.storage.plugins.module_utils.backends.rbd import bookkeeping as bk
from ansible_collections.blockyard.storage.plugins.module_utils.ceph import rbd
from ansible_collections.blockyard.storage.plugins.module_utils.errors import (
    Busy, Conflict, InvalidInput, NotFound, StorageError)
from ansible_collections.blockyard.storage.plugins.module_utils.model import Capacity, DataRef, Snapshot, Source, Volume
from ansible_collections.blockyard.storage.plugins.module_utils.plan import Plan
from ansible_collections.blockyard.storage.plugins.module_utils.runner import checkpoint

DEFAULT_POOL = 'rbd'
DEFAULT_MAX_CLONE_DEPTH = 5
ORDER = 22      # 4 MiB objects, as Cinder's rbd_store_chunk_size


class ImageState:
    """What the backend reads of a volume's image (the Volume's handle)."""

    def __init__(self, name, image_id, size, snapshots, parent, depth, features, order, others):
        self.name = name
        self.image_id = image_id
        self.size = size
        self.snapshots = snapshots      # [(volume snapshot name, rbd snapshot dict)] oldest first
        self.parent = parent            # the parent record (bookkeeping), or None
        self.depth = depth              # parents above it
        self.features = features
        self.order = order
        self.others = others            # rbd snapshots that are not the volume's (copies' snapshots)


class RbdBackend(Backend):
    """Volumes as RBD images of one pool (namespace) of one Ceph cluster."""
    kind = 'rbd'
    capabilities = frozenset(['revert_latest', 'revert_any', 'flatten', 'trash'])
    package = ceph.PACKAGE

    def __init__(self, cluster, pool, namespace=None, max_clone_depth=DEFAULT_MAX_CLONE_DEPTH,
                 flatten_from_snapshot=False, cinder_names=False):
        self.cluster = cluster
        self.pool = pool
        self.namespace = namespace or ''
        self.ioctx = cluster.ioctx(pool, self.namespace)
        self.max_clone_depth = max_clone_depth
        self.flatten_from_snapshot = flatten_from_snapshot
        self.cinder_names = cinder_names
        self.journal = bk.Journal(self.ioctx)
        self.rbd = rbd.RBD()
        self.warnings = []

    # ------------------------------------------------------------------ locations
    @classmethod
    def locations(cls, params):
        for key in ('volume_dir', 'share', 'shares', 'shares_config'):
            if params.get(key):
                raise InvalidInput('%s is an option of the file backend; backend rbd keeps volumes in a Ceph pool '
                                   '(pool, namespace and the ceph_* connection options).' % key)
        for key in ('owner', 'group', 'mode'):
            if params.get(key) is not None:
                raise InvalidInput('%s applies to files (backend file); RBD images have no owner or mode.' % key)
        depth = params.get('max_clone_depth')
        depth = DEFAULT_MAX_CLONE_DEPTH if depth is None else int(depth)
        if depth < 0 or depth > 100:
            raise InvalidInput('max_clone_depth %r must be between 0 (always flatten) and 100.' % (depth,))
        cluster = ceph.Cluster.get(params)
        return [cls(cluster, params.get('pool') or DEFAULT_POOL, params.get('namespace'), depth,
                    bool(params.get('flatten_volume_from_snapshot')),
                    bool(params.get('cinder_compatible_names')))], []

    @property
    def location(self):
        return '%s/%s' % (self.pool, self.namespace) if self.namespace else self.pool

    def lock_key(self, name):
        return (self.kind, self.cluster.fsid, self.pool, self.namespace, name)

    def lock(self, name):
        return bk.volume_lock(self.ioctx, name, 'pool %s' % self.location, warnings=self.warnings,
                              handle=self.cluster.handle)

    # ------------------------------------------------------------------ reading
    def _open(self, image, read_only=True, image_id=None, ioctx=None):
        try:
            if image_id:
                return rbd.Image(ioctx or self.ioctx, image_id=image_id, read_only=read_only)
            return rbd.Image(ioctx or self.ioctx, image, read_only=read_only)
        except rbd.ImageNotFound:
            return None
        except rbd.Error as exc:
            raise ceph.rbd_error(exc, 'Opening image', '%s/%s' % (self.location, image or image_id))

    # one pool (namespace) per task: no placement limits unless the operator
    # sets max_over_subscription_ratio or reserved_percentage
    unlimited_by_default = True

    def exists(self, name):
        """An image exists when its id object (rbd_id.<image>, format 2)
        does: one small read instead of opening the image; an image moved to
        the trash has none."""
        try:
            self.ioctx.stat('rbd_id.' + bk.image_name(name))
            return True
        except ceph.rados.ObjectNotFound:
            return False
        except ceph.rados.Error:
            image = self._open(bk.image_name(name))
            if image is None:
                return False
            image.close()
            return True

    def pending(self, name):
        try:
            return self.journal.read(name)
        except StorageError as exc:
            return {'op': None, 'error': exc.msg}

    def list_names(self):
        names = []
        for entry in self.rbd.list(self.ioctx):
            if entry.startswith('volume-') and naming.NAME_RE.fullmatch(entry[len('volume-'):]):
                names.append(entry[len('volume-'):])
        return sorted(names)

    def _parent_of(self, image):
        try:
            spec = image.get_parent_image_spec()
        except rbd.ImageNotFound:
            return None
        return {'pool': spec['pool_name'], 'namespace': spec.get('pool_namespace') or '',
                'image': spec['image_name'], 'snapshot': spec['snap_name'], 'id': image.parent_id()}

    def _parent_ioctx(self, parent):
        return self.cluster.ioctx(parent['pool'], parent['namespace'])

    def _depth(self, parent):
        """The number of parents above an image whose parent is `parent`."""
        depth = 0
        while parent is not None and depth < 1000:
            depth += 1
            image = self._open(None, image_id=parent['id'], ioctx=self._parent_ioctx(parent))
            if image is None:
                break
            try:
                parent = self._parent_of(image)
            finally:
                image.close()
        return depth

    def load_state(self, name):
        if not self.exists(name):
            return None
        image = self._open(bk.image_name(name))
        if image is None:
            return None
        try:
            snapshots, others = [], []
            for snap in image.list_snaps():
                if snap.get('namespace', 0) != 0:
                    continue    # trash or group snapshots are not the volume's
                entry = dict(snap)
                entry['protected'] = image.is_protected_snap(snap['name'])
                entry['children'] = [_spec(c['pool'], c['pool_namespace'], c['image'])
                                     for c in self._children(image, snap['name'])]
                if snap['name'].startswith('snapshot-') and naming.NAME_RE.fullmatch(snap['name'][len('snapshot-'):]):
                    snapshots.append((snap['name'][len('snapshot-'):], entry))
                else:
                    others.append(entry)
            parent = self._parent_of(image)
            return ImageState(name, image.id(), image.size(), snapshots, parent, None,
                              image.features(), image.stat()['order'], others)
        except rbd.Error as exc:
            raise ceph.rbd_error(exc, 'Reading volume', '%s in %s' % (name, self.location))
        finally:
            image.close()

    def _children(self, image, snap):
        image.set_snap(snap)
        try:
            return list(image.list_children2())
        finally:
            image.set_snap(None)

    def _model(self, state, pending=None):
        snapshots = [Snapshot(snap, state.name, entry['size'], dependent=bool(entry['children']),
                              pending=bool(pending and pending.get('snapshot') == snap), details={
                                  'rbd_snapshot': entry['name'], 'protected': entry['protected'],
                                  'children': entry['children'], 'id': entry['id']})
                     for snap, entry in state.snapshots]
        return Volume(state.name, self.kind, self.location, state.size, 'thin', 'raw', allocated=None, managed=True,
                      snapshots=snapshots, active=self._ref(state.name, state.size), pending=pending,
                      details={'pool': self.pool, 'namespace': self.namespace, 'image': bk.image_name(state.name),
                               'id': state.image_id, 'features': rbd.RBD().features_to_string(state.features)
                               .split(',') if state.features else [],
                               'object_size_bytes': 1 << state.order, 'parent': state.parent,
                               'copy_snapshots': [e['name'] for e in state.others]},
                      handle=state)

    def load(self, name, fmt=None, size=None):
        """fmt and size matter to adoption by the file backend only: an RBD
        image's size is its own, and it is always raw (plan_update checks)."""
        state = self.load_state(name)
        return None if state is None else self._model(state, self.pending(name))

    def snapshot_details(self, volume, snapshot):
        return dict(snapshot.details, image=bk.image_name(volume.name))

    def capacity(self, known=None, volumes=True):
        stored, max_avail, quota, used = self.cluster.pool_df(self.pool)
        if quota:
            total, free = quota, max(min(quota - stored, max_avail), 0)
        else:
            total, free = stored + max_avail, max_avail
        result = Capacity(self.location, total, free, used,
                          details={'pool': self.pool, 'namespace': self.namespace, 'quota_bytes': quota or None,
                                   'stored_bytes': stored, 'max_avail_bytes': max_avail})
        if not volumes:
            return result
        provisioned = self.provisioned(known, self._image_size)
        # the cluster does not say what one namespace allocates: the pool's bytes
        result.allocated, result.provisioned = stored, provisioned
        return result

    def _image_size(self, name):
        image = self._open(bk.image_name(name))
        if image is None:
            return None
        try:
            return image.size()
        finally:
            image.close()

    # ------------------------------------------------------------------ data
    def _ref(self, name, size, snapshot=None):
        s = self.cluster.settings
        return DataRef('rbd', 'raw', size, pool=self.pool, namespace=self.namespace, image=bk.image_name(name),
                       snapshot=snapshot, cluster=ceph.data_cluster(s))

    def _snapshot_entry(self, state, snap):
        for name, entry in state.snapshots:
            if name == snap:
                return entry
        raise NotFound('Snapshot %s of volume %s does not exist in %s: choose one of %s.'
                       % (snap, state.name, self.location, ', '.join(n for n, _e in state.snapshots) or 'none'))

    def data_ref(self, volume, snapshot=None):
        state = volume.handle
        if snapshot is None:
            return self._ref(state.name, state.size)
        entry = self._snapshot_entry(state, snapshot)
        return self._ref(state.name, entry['size'], entry['name'])

    def plan_read(self, volume, snapshot=None, purpose=None):
        """A snapshot's point in time as it is; the current data frozen by the
        snapshot volume-<purpose>.clone_snap that the release step removes."""
        state = volume.handle
        if snapshot is not None:
            entry = self._snapshot_entry(state, snapshot)
            return Source(self._ref(state.name, entry['size'], entry['name']), entry['size'],
                          'snapshot %s of volume %s (%s@%s)'
                          % (snapshot, state.name, bk.image_name(state.name), entry['name']),
                          backend=self, volume=volume, snapshot=snapshot)
        tmp = bk.clone_snap(purpose or 'copy')
        if any(e['name'] == tmp for e in state.others):
            raise Conflict('Volume %s already has a snapshot %s: a copy into %s is in progress or was interrupted. '
                           'Re-run after it ends.' % (state.name, tmp, purpose))
        prepare, release = Plan('rbd_read_prepare'), Plan('rbd_read_release')
        prepare.on_failure(self._drop_copy_snapshot, state.name, tmp, last=True)
        prepare.add('', self.journal.write, state.name, {'op': 'clone', 'snapshot': tmp})
        prepare.add('create temporary snapshot %s of %s' % (tmp, bk.image_name(state.name)),
                    self._create_snap, state.name, tmp, False)
        release.add('delete temporary snapshot %s of %s' % (tmp, bk.image_name(state.name)),
                    self._drop_copy_snapshot, state.name, tmp)
        return Source(self._ref(state.name, state.size, tmp), state.size,
                      'the point in time of %s@%s' % (bk.image_name(state.name), tmp), prepare, release,
                      backend=self, volume=volume)

    def _drop_copy_snapshot(self, name, tmp):
        self._remove_snap(bk.image_name(name), tmp)
        journal = self.journal.read(name)
        if journal and journal.get('op') == 'clone':
            self.journal.clear(name)

    def native_access(self, volume):
        """librbd on the hypervisor reads the image (os-brick's rbd connector)."""
        hosts, ports = self.cluster.monitors()
        return {'kind': 'rbd', 'hosts': hosts, 'ports': ports}

    def can_clone_from(self, other, volume, snapshot, fmt, provisioning):
        """An RBD clone: raw and thin, from an image of the same cluster and
        namespace (clones of format 1, which this librbd makes, cannot cross
        namespaces); other copies go through qemu-img."""
        return (other.kind == self.kind and fmt == 'raw' and provisioning == 'thin'
                and other.cluster.fsid == self.cluster.fsid and other.namespace == self.namespace)

    # ------------------------------------------------------------------ image steps
    def _image(self, name, read_only=False):
        image = self._open(bk.image_name(name), read_only=read_only)
        if image is None:
            raise NotFound('Volume %s does not exist in %s (image %s).' % (name, self.location, bk.image_name(name)))
        return image

    def _create_snap(self, name, snap, protect=True):
        image = self._image(name)
        try:
            names = set(s['name'] for s in image.list_snaps())
            if snap not in names:
                image.create_snap(snap)
                checkpoint('rbd.snapshot_made')
            if protect and not image.is_protected_snap(snap):
                image.protect_snap(snap)
        except rbd.Error as exc:
            raise ceph.rbd_error(exc, 'Creating snapshot %s of' % snap, bk.image_name(name))
        finally:
            image.close()

    def _remove_snap(self, image_name, snap, ioctx=None, image_id=None, flatten=False):
        """Remove an RBD snapshot (unprotected first); with flatten, the
        images cloned from it are flattened first, else it stays when it has
        any (returns False)."""
        image = self._open(image_name, read_only=False, image_id=image_id, ioctx=ioctx)
        if image is None:
            return True
        try:
            if snap not in set(s['name'] for s in image.list_snaps()):
                return True
            children = self._children(image, snap)
            if children and not flatten:
                return False
            for child in children:
                self._flatten_child(child)
            if image.is_protected_snap(snap):
                image.unprotect_snap(snap)
                checkpoint('rbd.unprotected')
            image.remove_snap(snap)
            return True
        except rbd.Error as exc:
            raise ceph.rbd_error(exc, 'Removing snapshot %s of' % snap, image_name or image_id)
        finally:
            image.close()

    def _flatten_child(self, child):
        ioctx = self._parent_ioctx({'pool': child['pool'], 'namespace': child['pool_namespace']})
        image = self._open(None, read_only=False, image_id=child['id'], ioctx=ioctx)
        if image is None:
            return
        try:
            image.flatten()
        except rbd.Error as exc:
            raise ceph.rbd_error(exc, 'Flattening clone', '%s/%s' % (child['pool'], child['image']))
        finally:
            image.close()

    def _release_parent(self, parent, child):
        """After copy `child` went (or was flattened): its snapshot of its
        source (volume-<child>.clone_snap, never another one) goes, and a
        source in the trash whose last snapshot that was goes with it, then
        that source's own source likewise."""
        if parent is None or parent['snapshot'] != bk.clone_snap(child):
            return
        ioctx = self._parent_ioctx(parent)
        grand = None
        try:
            if not self._remove_snap(None, parent['snapshot'], ioctx=ioctx, image_id=parent['id']):
                return
            if not any(t['id'] == parent['id'] for t in self.rbd.trash_list(ioctx)):
                return
            image = self._open(None, image_id=parent['id'], ioctx=ioctx)
            if image is None:
                return
            try:
                left = [s for s in image.list_snaps() if s.get('namespace', 0) == 0]
                grand = self._parent_of(image)
            finally:
                image.close()
            if left:
                return
            self.rbd.trash_remove(ioctx, parent['id'], force=True)
        except rbd.Error as exc:
            raise ceph.rbd_error(exc, 'Releasing the source', '%s/%s' % (parent['pool'], parent['image']))
        if parent['image'].startswith('volume-'):
            self._release_parent(grand, parent['image'][len('volume-'):])

    # ------------------------------------------------------------------ recovery
    def recover(self, name, check_mode=False, discard_invalid=False):
        return self.recover_journal(self.journal, bk.InvalidJournal, bk.OPERATIONS, name, check_mode, discard_invalid,
                                    'journal in %s of pool %s' % (bk.JOURNAL_OBJECT, self.location))

    def _recover_create(self, name, journal):
        """Undo: the partial image goes, and the copy's snapshot of its source."""
        image = self._open(bk.image_name(name))
        if image is not None:
            try:
                parent = self._parent_of(image)
                snaps = list(image.list_snaps())
            finally:
                image.close()
            if snaps:
                raise Conflict('Image %s has snapshots although its create was not completed: it was changed by '
                               'another tool. Inspect it.' % bk.image_name(name))
            self._fence_watchers(name, 'it was still writing the unfinished copy %s' % bk.image_name(name))
            self._remove_image(name)
            self._release_parent(parent, name)
        self._release_parent(journal.get('parent'), name)

    def _fence_watchers(self, name, why):
        """An unfinished image was never handed out: a client that still
        watches it is a copy (qemu-img) of the interrupted run."""
        image = self._open(bk.image_name(name))
        if image is None:
            return
        try:
            watchers = [w['addr'] for w in image.watchers_list()]
        finally:
            image.close()
        for addr in watchers:
            bk.fence(self.cluster.handle, addr, self.warnings, why)

    def _recover_clone(self, name, journal):
        self._remove_snap(bk.image_name(name), journal['snapshot'])

    def _recover_snapshot_create(self, name, journal):
        self._remove_snap(bk.image_name(name), bk.snap_name(journal['snapshot']), flatten=False)

    def _recover_snapshot_delete(self, name, journal):
        self._remove_snap(bk.image_name(name), bk.snap_name(journal['snapshot']), flatten=True)

    def _recover_revert(self, name, journal):
        self._rollback(name, bk.snap_name(journal['snapshot']), journal['size'])

    def _recover_delete(self, name, journal):
        self._delete(name, journal.get('parent'))

    # ------------------------------------------------------------------ volumes
    def _check_kind(self, fmt, provisioning):
        if fmt not in (None, 'raw'):
            self.require_capability('qcow2', 'A %s volume' % fmt)
        if provisioning not in (None, 'thin'):
            self.require_capability('thick', 'A %s volume' % provisioning)

    def plan_create(self, name, fmt, size, provisioning, source=None):
        self._check_kind(fmt, provisioning)
        if source is None and size is None:
            raise InvalidInput('Volume %s does not exist and no size was given: give size to create it.' % name)
        plan = Plan('volume_present')
        image = bk.image_name(name)
        if source is None:
            plan.add('create RBD image %s/%s of %s' % (self.location, image, naming.human_size(size)),
                     self._create_image, name, size)
            final = size
        else:
            final = _round_up(source.size, 512) if size is None else size
            if final < source.size:
                raise Conflict('Volume %s would be %s but its source is %s: a copy cannot be smaller than its '
                               'source. Give size >= %s or leave it out.'
                               % (name, naming.human_size(final), naming.human_size(source.size),
                                  naming.human_size(_round_up(source.size, 512))))
            plan.on_failure(self._undo_create, name)
            if source.backend is not None and self.can_clone_from(source.backend, source.volume, source.snapshot,
                                                                  'raw', 'thin'):
                self._plan_clone(plan, name, source, final)
            else:
                plan.add('', self.journal.write, name, {'op': 'create', 'parent': None, 'size': final})
                plan.add('create RBD image %s/%s of %s' % (self.location, image, naming.human_size(final)),
                         self._create_image, name, final)
                if source.prepare is not None:
                    plan.extend(source.prepare)
                plan.add('copy %s into %s' % (source.description, image), qemu_img.convert_to, source.ref,
                         self._ref(name, final))
                if source.release is not None:
                    plan.extend(source.release)
                plan.add('', self.journal.clear, name)
        plan.after = Volume(name, self.kind, self.location, final, 'thin', 'raw', managed=True,
                            details={'pool': self.pool, 'namespace': self.namespace, 'image': image,
                                     'predicted': True})
        return plan, None

    def _plan_clone(self, plan, name, source, final):
        src_state = source.volume.handle
        src = source.backend
        if src_state.depth is None:
            src_state.depth = src._depth(src_state.parent)
        if source.snapshot is None:
            snap = bk.clone_snap(name)
            flatten = src_state.depth >= self.max_clone_depth
        else:
            snap = bk.snap_name(source.snapshot)
            flatten = self.flatten_from_snapshot or src_state.depth >= self.max_clone_depth
        parent = {'pool': src.pool, 'namespace': src.namespace, 'image': bk.image_name(src_state.name),
                  'snapshot': snap, 'id': src_state.image_id}
        plan.add('', self.journal.write, name, {'op': 'create', 'parent': parent, 'size': final})
        if source.snapshot is None:
            plan.add('create and protect snapshot %s of %s' % (snap, parent['image']), src._create_snap,
                     src_state.name, snap)
        plan.add('clone %s/%s@%s into %s/%s' % (src.location, parent['image'], snap, self.location,
                                                bk.image_name(name)),
                 self._clone, src, parent, name)
        if final > source.size:
            plan.add('grow %s to %s' % (bk.image_name(name), naming.human_size(final)), self._resize, name, final)
        if flatten:
            why = ('flatten_volume_from_snapshot' if source.snapshot is not None and self.flatten_from_snapshot
                   else 'the source is %d clones deep, max_clone_depth %d' % (src_state.depth, self.max_clone_depth))
            plan.add('flatten %s (%s)' % (bk.image_name(name), why), self._flatten, name, parent)
        plan.add('', self.journal.clear, name)

    def _create_image(self, name, size):
        try:
            self.rbd.create(self.ioctx, bk.image_name(name), size, order=ORDER, old_format=False,
                            features=rbd.RBD_FEATURE_LAYERING)
        except rbd.ImageExists:
            raise Conflict('Cannot create volume %s: image %s appeared in %s while it was being made. Nothing was '
                           'replaced.' % (name, bk.image_name(name), self.location))
        except rbd.Error as exc:
            raise ceph.rbd_error(exc, 'Creating image', '%s/%s' % (self.location, bk.image_name(name)))
        checkpoint('rbd.image_made')

    def _clone(self, src, parent, name):
        try:
            self.rbd.clone(src.ioctx, parent['image'], parent['snapshot'], self.ioctx, bk.image_name(name),
                           features=rbd.RBD_FEATURE_LAYERING, order=ORDER)
        except rbd.Error as exc:
            raise ceph.rbd_error(exc, 'Cloning %s@%s into' % (parent['image'], parent['snapshot']),
                                 '%s/%s' % (self.location, bk.image_name(name)))
        checkpoint('rbd.cloned')

    def _flatten(self, name, parent):
        image = self._image(name)
        try:
            image.flatten()
        except rbd.Error as exc:
            raise ceph.rbd_error(exc, 'Flattening', bk.image_name(name))
        finally:
            image.close()
        self._release_parent(parent, name)

    def _resize(self, name, size):
        image = self._image(name)
        try:
            if image.size() != size:
                image.resize(size)
        except rbd.Error as exc:
            raise ceph.rbd_error(exc, 'Resizing', bk.image_name(name))
        finally:
            image.close()

    def _undo_create(self, name):
        """A create or copy that failed cleanly: what its recovery does, now."""
        journal = self.journal.read(name)
        if journal and journal.get('op') == 'create':
            self._recover_create(name, journal)
            self.journal.clear(name)

    def plan_update(self, volume, fmt=None, size=None, provisioning=None):
        state = volume.handle
        plan = Plan('volume_present')
        if fmt not in (None, 'raw'):
            raise Conflict('Volume %s exists as raw (an RBD image), not %s: a volume\'s format cannot be changed in '
                           'place.' % (state.name, fmt))
        if provisioning not in (None, 'thin'):
            plan.warnings.append('Volume %s is an RBD image (thin); provisioning=%s is ignored for an existing '
                                 'volume.' % (state.name, provisioning))
        if size is not None and size < state.size:
            raise Conflict('Volume %s is %d bytes (%s); refusing to shrink it to %d bytes (%s): shrinking loses '
                           'data. Give size >= %s.' % (state.name, state.size, naming.human_size(state.size), size,
                                                       naming.human_size(size), naming.human_size(state.size)))
        if size is not None and size > state.size:
            plan.add('extend volume %s from %s to %s (resize %s)'
                     % (state.name, naming.human_size(state.size), naming.human_size(size), bk.image_name(state.name)),
                     self._resize, state.name, size)
        after = self._model(state)
        after.size = max(size or 0, state.size)
        plan.after = after
        return plan, volume

    def plan_delete(self, name, force=False):
        plan = Plan('volume_absent')
        state = self.load_state(name)
        if state is None:
            return plan, None
        if state.snapshots and not force:
            raise Conflict('Volume %s has snapshots (%s): deleting it deletes them too. Delete the snapshots first, '
                           'or set force=true.' % (name, ', '.join(s for s, _e in state.snapshots)))
        self._refuse_in_use(name, 'delete volume %s' % name)
        plan.add('', self.journal.write, name, {'op': 'delete', 'parent': state.parent})
        for snap, entry in state.snapshots:
            if entry['children']:
                plan.add('flatten %s (cloned from snapshot %s)' % (', '.join(entry['children']), snap))
            plan.add('delete snapshot %s of volume %s' % (snap, name))
        copies = [c for e in state.others for c in e['children']]
        if copies:
            plan.add('move image %s to the trash of %s (its copies %s still depend on it; it goes with the last '
                     'of them)' % (bk.image_name(name), self.location, ', '.join(copies)))
        else:
            plan.add('delete image %s of %s' % (bk.image_name(name), self.location))
        if state.parent is not None and state.parent['snapshot'].endswith('.clone_snap'):
            plan.add('release snapshot %s of %s (this volume\'s source)'
                     % (state.parent['snapshot'], state.parent['image']))
        # the texts above describe what _delete does in one step (it is also
        # what a crash recovery completes)
        plan.add('', self._delete, name, state.parent)
        plan.add('', self.journal.clear, name)
        return plan, self._model(state)

    def _delete(self, name, parent):
        """Delete a volume: its snapshots (their clones flattened), copy
        snapshots without copies, then the image (to the trash while copies
        depend on it), then release its own source."""
        image_name = bk.image_name(name)
        image = self._open(image_name)
        if image is not None:
            try:
                snaps = [s['name'] for s in image.list_snaps() if s.get('namespace', 0) == 0]
            finally:
                image.close()
            kept = []
            for snap in snaps:
                user = snap.startswith('snapshot-')
                if not self._remove_snap(image_name, snap, flatten=user):
                    kept.append(snap)
                checkpoint('rbd.delete_snapshot')
            if kept:
                try:
                    self.rbd.trash_move(self.ioctx, image_name, 0)
                except rbd.Error as exc:
                    raise ceph.rbd_error(exc, 'Moving to the trash', image_name)
            else:
                self._remove_image(name)
            checkpoint('rbd.deleted')
        self._release_parent(parent, name)

    def _remove_image(self, name):
        try:
            self.rbd.remove(self.ioctx, bk.image_name(name))
        except rbd.ImageNotFound:
            pass
        except rbd.ImageBusy as exc:
            raise Busy('Cannot delete volume %s: image %s is in use (%s): detach it from its clients (watchers) '
                       'first.' % (name, bk.image_name(name), exc))
        except rbd.Error as exc:
            raise ceph.rbd_error(exc, 'Deleting image', bk.image_name(name))

    # ------------------------------------------------------------------ snapshots
    def _require_state(self, name):
        state = self.load_state(name)
        if state is None:
            raise NotFound('Volume %s does not exist in %s: create it first (blockyard.storage.volume).'
                           % (name, self.location))
        return state

    def _predict(self, state, snapshots):
        after = self._model(state)
        known = dict((s.name, s) for s in after.snapshots)
        after.snapshots = [known.get(s) or Snapshot(s, state.name, state.size, details={
            'rbd_snapshot': bk.snap_name(s), 'protected': True, 'children': [], 'id': None}) for s in snapshots]
        return after

    def plan_snapshot_create(self, name, snapshot):
        state = self._require_state(name)
        before = self._model(state)
        plan = Plan('snapshot_present')
        names = [s for s, _e in state.snapshots]
        if snapshot in names:
            entry = self._snapshot_entry(state, snapshot)
            if not entry['protected']:
                plan.add('protect snapshot %s of volume %s' % (snapshot, name), self._create_snap, name,
                         entry['name'])
            plan.after = before
            return plan, before
        snap = bk.snap_name(snapshot)
        plan.on_failure(self._undo_snapshot_create, name, snapshot)
        plan.add('', self.journal.write, name, {'op': 'snapshot_create', 'snapshot': snapshot})
        plan.add('create and protect snapshot %s of %s (%s)' % (snapshot, name, snap), self._create_snap, name,
                 snap)
        plan.add('', self.journal.clear, name)
        plan.after = self._predict(state, names + [snapshot])
        return plan, before

    def _undo_snapshot_create(self, name, snapshot):
        journal = self.journal.read(name)
        if journal and journal.get('op') == 'snapshot_create':
            self._recover_snapshot_create(name, journal)
            self.journal.clear(name)

    def plan_snapshot_delete(self, name, snapshot):
        state = self._require_state(name)
        before = self._model(state)
        plan = Plan('snapshot_absent')
        names = [s for s, _e in state.snapshots]
        if snapshot not in names:
            plan.after = before
            return plan, before
        entry = self._snapshot_entry(state, snapshot)
        plan.add('', self.journal.write, name, {'op': 'snapshot_delete', 'snapshot': snapshot})
        if entry['children']:
            plan.add('flatten %s (cloned from snapshot %s)' % (', '.join(entry['children']), snapshot))
        plan.add('delete snapshot %s of volume %s (%s)' % (snapshot, name, entry['name']), self._remove_snap,
                 bk.image_name(name), entry['name'], None, None, True)
        plan.add('', self.journal.clear, name)
        plan.after = self._predict(state, [s for s in names if s != snapshot])
        return plan, before

    def plan_revert(self, name, snapshot):
        self.require_capability('revert_latest', 'Reverting a volume to a snapshot')
        state = self._require_state(name)
        before = self._model(state)
        plan = Plan('snapshot_reverted')
        entry = self._snapshot_entry(state, snapshot)
        plan.after = before
        if not self._written_since(name, entry):
            return plan, before
        self._refuse_in_use(name, 'revert volume %s to snapshot %s' % (name, snapshot))
        plan.add('', self.journal.write, name, {'op': 'revert', 'snapshot': snapshot, 'size': state.size})
        plan.add('roll volume %s back to snapshot %s (%s)' % (name, snapshot, entry['name']), self._rollback, name,
                 entry['name'], state.size)
        plan.add('', self.journal.clear, name)
        return plan, before

    def _refuse_in_use(self, name, doing):
        """Busy (before anything is written) when clients have the image
        open: a guest must not see its disk vanish or change under it."""
        image = self._image(name, read_only=True)
        try:
            watchers = [w['addr'] for w in image.watchers_list()]
        except rbd.Error as exc:
            raise ceph.rbd_error(exc, 'Listing the clients of', bk.image_name(name))
        finally:
            image.close()
        if watchers:
            raise Busy('Cannot %s: image %s in %s is in use by %s; detach it from its clients first (rbd status %s '
                       'shows them). Nothing was changed.'
                       % (doing, bk.image_name(name), self.location, ', '.join(watchers),
                          _spec(self.pool, self.namespace, bk.image_name(name))), volume=name, watchers=watchers)

    def _written_since(self, name, entry):
        """True when the image's data differs from the snapshot's: the
        extents diff_iterate reports as changed since the snapshot (a
        rollback rewrites objects, so they are compared, not just counted),
        or a size below the snapshot's. Data beyond the snapshot's size
        (an extension) reads as zeros until written."""
        image = self._image(name, read_only=True)
        changed = []

        def seen(offset, length, exists):
            changed.append((offset, length))
            return 0
        try:
            size = image.size()
            if size < entry['size']:
                return True
            image.diff_iterate(0, size, entry['name'], seen, include_parent=False)
            if not changed:
                return False
            then = rbd.Image(self.ioctx, bk.image_name(name), snapshot=entry['name'], read_only=True)
            try:
                for offset, length in changed:
                    for start in range(offset, offset + length, 4 << 20):
                        count = min(4 << 20, offset + length - start)
                        now = image.read(start, count)
                        old = then.read(start, count) if start < entry['size'] else b''
                        old += b'\0' * (count - len(old))
                        if now != old:
                            return True
            finally:
                then.close()
        except rbd.Error as exc:
            raise ceph.rbd_error(exc, 'Comparing with snapshot %s' % entry['name'], bk.image_name(name))
        finally:
            image.close()
        return False

    def _rollback(self, name, snap, size):
        image = self._image(name)
        try:
            image.rollback_to_snap(snap)
            checkpoint('rbd.rolled_back')
            if image.size() < size:
                image.resize(size)
        except rbd.Error as exc:
            raise ceph.rbd_error(exc, 'Rolling back to %s' % snap, bk.image_name(name))
        finally:
            image.close()


def _spec(pool, namespace, image):
    """pool/[namespace/]image, as the rbd CLI names an image."""
    return '%s/%s%s' % (pool, namespace + '/' if namespace else '', image)


def _round_up(value, unit):
    return (value + unit - 1) // unit * unit
