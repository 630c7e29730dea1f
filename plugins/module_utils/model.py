# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The neutral model every backend speaks, and what the orchestration, the
modules' results and the targets see: a Volume, its Snapshots, the Capacity
of a location, and a DataRef (where a reader finds the data and in which
format). Facts that only one backend has go in each object's `details`."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class DataRef:
    """Where the data of a volume (or of one of its snapshots) can be read:
    kind `file` (path), `block` (path of a block device) or `rbd` (pool,
    namespace, image, snapshot, and the cluster connection: conf, user,
    keyring path, cluster_name: never a key); `format` is what a reader must pass (raw or qcow2), never
    probed; `size` in bytes."""

    KINDS = ('file', 'block', 'rbd')

    def __init__(self, kind, format, size, path=None, pool=None, image=None, snapshot=None, cluster=None,
                 namespace=None):
        if kind not in self.KINDS:
            raise ValueError('DataRef kind %r is not one of %s' % (kind, ', '.join(self.KINDS)))
        self.kind = kind
        self.format = format
        self.size = size
        self.path = path
        self.pool = pool
        self.namespace = namespace or ''
        self.image = image
        self.snapshot = snapshot
        self.cluster = dict(cluster or {})

    def describe(self):
        if self.kind == 'rbd':
            return 'rbd:%s/%s%s%s' % (self.pool, self.namespace + '/' if self.namespace else '', self.image,
                                      '@%s' % self.snapshot if self.snapshot else '')
        return self.path

    def to_dict(self):
        result = {'kind': self.kind, 'format': self.format, 'size_bytes': self.size}
        if self.kind == 'rbd':
            result.update(pool=self.pool, namespace=self.namespace, image=self.image, snapshot=self.snapshot)
        else:
            result['path'] = self.path
        return result

    def __repr__(self):
        return 'DataRef(%s %s %s)' % (self.kind, self.describe(), self.format)


class Snapshot:
    """A snapshot of a volume: its point in time holds `size` bytes;
    `dependent`: something (a newer snapshot's data, a clone) depends on it."""

    def __init__(self, name, volume, size, dependent=False, pending=False, details=None):
        self.name = name
        self.volume = volume
        self.size = size
        self.dependent = dependent
        self.pending = pending              # an interrupted operation affects it
        self.details = dict(details or {})

    def to_result(self):
        return {'name': self.name, 'volume': self.volume, 'size_bytes': self.size, 'dependent': self.dependent,
                'pending': self.pending, 'details': dict(self.details)}


class Volume:
    """A volume as every backend describes it. `active` is the DataRef of its
    current data; `snapshots` are oldest first; `pending` is the record of an
    interrupted operation (or None); `details` holds backend-only facts."""

    def __init__(self, name, backend, location, size, provisioning, format, allocated=None, managed=True,
                 snapshots=None, active=None, pending=None, details=None, handle=None):
        self.name = name
        self.backend = backend
        self.location = location
        self.size = size
        self.provisioning = provisioning
        self.format = format
        self.allocated = allocated
        self.managed = managed
        self.snapshots = list(snapshots or [])
        self.active = active
        self.pending = pending
        self.details = dict(details or {})
        self.handle = handle                # the backend's own state of it (never in a result)

    def snapshot(self, name):
        for snap in self.snapshots:
            if snap.name == name:
                return snap
        return None

    @property
    def snapshot_names(self):
        return [snap.name for snap in self.snapshots]

    def to_result(self):
        return {
            'name': self.name, 'backend': self.backend, 'location': self.location, 'state': 'present',
            'size_bytes': self.size, 'format': self.format, 'provisioning': self.provisioning,
            'allocated_bytes': self.allocated, 'managed': self.managed,
            'snapshots': [snap.to_result() for snap in self.snapshots],
            'pending_operation': dict(self.pending) if self.pending else None,
            'details': dict(self.details),
        }

    def summary(self):
        """What a diff shows of the volume."""
        return {'state': 'present', 'format': self.format, 'provisioning': self.provisioning,
                'size_bytes': self.size, 'managed': self.managed, 'snapshots': self.snapshot_names}


def absent_result(name, backend, location):
    return {'name': name, 'backend': backend, 'location': location, 'state': 'absent'}


class Capacity:
    """The capacity of one location (a directory or share, a pool, a VG)."""

    def __init__(self, location, total, free, used, allocated=None, provisioned=None, details=None):
        self.location = location
        self.total = total
        self.free = free
        self.used = used
        self.allocated = allocated
        self.provisioned = provisioned
        self.details = dict(details or {})

    def to_result(self):
        ratio = None
        if self.total and self.provisioned is not None:
            ratio = round(float(self.provisioned) / self.total, 4)
        return {'location': self.location, 'total_bytes': self.total, 'free_bytes': self.free,
                'used_bytes': self.used, 'allocated_bytes': self.allocated, 'provisioned_bytes': self.provisioned,
                'apparent_over_subscription': ratio, 'details': dict(self.details)}


class Source:
    """What a copy reads: a DataRef and its size, plus the steps the source's
    backend needs around the copy (a temporary snapshot that freezes a
    volume in use, and its removal), and where it came from (for the
    destination's same-kind fast path)."""

    def __init__(self, ref, size, description, prepare=None, release=None, backend=None, volume=None,
                 snapshot=None):
        self.ref = ref
        self.size = size
        self.description = description
        self.prepare = prepare          # a Plan run before the copy (or None)
        self.release = release          # a Plan run after it (or None)
        self.backend = backend
        self.volume = volume
        self.snapshot = snapshot
