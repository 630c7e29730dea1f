# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The contract every volume backend implements.

A backend is one class in a package of its own under ``backends``, registered in
``backends/__init__.py``. The orchestration (``volumes.py``) knows nothing
else of it: it speaks the neutral model (``model.py``) and this contract.
Every ``plan_*`` method reads the state (after ``recover``), checks it, and
returns ``(plan, before)``: a Plan (empty when nothing is to change) whose
``after`` is the predicted Volume (None when it will be absent), and the
Volume read before it (None when absent). Check mode returns the plan's
actions and ``after``; a real run executes the plan, then reads the volume
again. Errors are StorageError subclasses whose messages name the object, the
cause and the fix."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.blockyard.storage.plugins.module_utils import naming
from ansible_collections.blockyard.storage.plugins.module_utils.errors import StorageError, Unsupported

# Capabilities a backend may declare (what the orchestration may ask of it).
CAPABILITIES = frozenset([
    'qcow2',            # volumes in qcow2 format
    'thick',            # fully allocated volumes
    'revert_latest',    # revert to the latest snapshot
    'revert_any',       # revert to any snapshot
    'clone_reflink',    # O(1) clones sharing extents with their source
    'flatten',          # detach a clone from its parent
    'trash',            # deferred deletion
    'adopt',            # volumes made by another tool are taken over
    'clear_on_delete',  # wipe the data when a volume is deleted
])


class Backend:
    """One location of one kind (a directory or share, a pool, a VG)."""

    kind = None                 # the value of the `backend` option
    capabilities = frozenset()  # a subset of CAPABILITIES
    reserved_snapshot_names = frozenset()
    package = None              # what to install when the backend's library is missing

    # ------------------------------------------------------------ locations
    @classmethod
    def locations(cls, params):
        """(backends, notes): the candidate locations the module params name
        (a volume_dir, the mounted shares, a pool...), and a note for each
        one skipped (an unmounted share). InvalidInput when none is usable."""
        raise NotImplementedError

    @property
    def location(self):
        """How results name this location (a share string, a pool...)."""
        raise NotImplementedError

    # The provisioning of a new volume when the task gives none (the lvm
    # backend: its lvm_type).
    default_provisioning = 'thin'

    # True for a location with no placement limits unless the operator sets
    # them (a plain local directory); shares and pools are always checked.
    unlimited_by_default = False

    # ------------------------------------------------------------ names
    def validate_name(self, name, what='volume'):
        return naming.validate_name(name, what, getattr(self, 'cinder_names', False))

    def validate_snapshot_name(self, name):
        return naming.validate_snapshot_name(name, getattr(self, 'cinder_names', False),
                                             self.reserved_snapshot_names)

    def require_capability(self, capability, doing):
        if capability not in self.capabilities:
            raise Unsupported('%s is not supported by backend %s (it lacks the capability %r): use a backend that '
                              'has it, or leave the option out.' % (doing, self.kind, capability),
                              backend=self.kind, capability=capability)

    # ------------------------------------------------------------ reading
    def exists(self, name):
        """True when volume `name` exists here (leftovers of a deleted volume
        do not count)."""
        raise NotImplementedError

    def load(self, name, fmt=None, size=None):
        """The checked Volume, or None when it does not exist. fmt: the format
        an operator states for a volume adopted from another tool; size: a
        size the operator restates (which may adopt a larger one)."""
        raise NotImplementedError

    def require(self, name, fmt=None, size=None):
        volume = self.load(name, fmt, size)
        if volume is None:
            from ansible_collections.blockyard.storage.plugins.module_utils.errors import NotFound
            raise NotFound('Volume %s does not exist in %s: create it first (blockyard.storage.volume).'
                           % (name, self.location))
        return volume

    def snapshot_details(self, volume, snapshot):
        """The `details` the snapshot module returns for a snapshot."""
        return dict(snapshot.details)

    def list_names(self):
        """Names of the volumes here, sorted."""
        raise NotImplementedError

    def pending(self, name):
        """The record of an interrupted operation on `name` (a dict with at
        least `op`), a dict with `error` when that record is damaged, or None."""
        return None

    def capacity(self, known=None, volumes=True):
        """The Capacity of this location. known: {name: Volume result} already
        read; volumes=False: the location's own figures only, without
        summing its volumes (allocated and provisioned are None)."""
        raise NotImplementedError

    def provisioned(self, known, size_of):
        """The sum of the sizes of the volumes here (a capacity's
        provisioned bytes): from `known` results where already read, else
        size_of(name) (None: not counted)."""
        total = 0
        known = known or {}
        for name in self.list_names():
            desc = known.get(name)
            size = desc['size_bytes'] if desc and 'error' not in desc else size_of(name)
            total += size or 0
        return total

    # ------------------------------------------------------------ locking
    def lock(self, name):
        """A context manager holding the lock of volume `name` (across hosts
        where the backend can). Removes what the lock leaves behind when the
        volume does not exist afterwards."""
        raise NotImplementedError

    def lock_key(self, name):
        """A sortable key: several volumes are always locked in key order."""
        return (self.kind, str(self.location), name)

    def check_lock(self, name):
        """Check mode: what taking the lock would refuse, without taking it."""

    def has_lone_lock(self, name):
        """True when only the lock of a volume that does not exist is left (a
        leftover that deleting the volume removes, and reports)."""
        return False

    def recover(self, name, check_mode=False, discard_invalid=False):
        """Complete or undo an operation on `name` that a crash interrupted;
        return its actions (or, in check mode, what it would do)."""
        return []

    def recover_journal(self, store, invalid, operations, name, check_mode, discard_invalid, where, undone=()):
        """recover() for a backend whose journals live in `store` (read(name)
        and clear(name)): a journal that raises `invalid` is refused, or
        discarded with discard_invalid; a valid one is completed (undone, for
        the ops in `undone`) by the backend's _recover_<op>(name, journal),
        and a failure names the journal (`where`). operations: op -> words."""
        actions = []
        try:
            journal = store.read(name)
        except invalid:
            if not discard_invalid:
                raise
            actions.append('discard the invalid journal of volume %s' % name)
            if not check_mode:
                self.warnings.append('Discarded the invalid journal of volume %s.' % name)
                store.clear(name)
            journal = None
        if not journal:
            return actions
        op = journal['op']
        text = '%s interrupted %s of volume %s' % ('undo' if op in undone else 'complete', operations[op], name)
        if check_mode:
            return actions + [text]
        try:
            getattr(self, '_recover_%s' % op)(name, journal)
        except StorageError as exc:
            raise type(exc)('An interrupted %s of volume %s (%s) must be completed first: %s'
                            % (operations[op], name, where, exc.msg), **exc.details)
        store.clear(name)
        return actions + [text]

    # ------------------------------------------------------------ volumes
    def plan_create(self, name, fmt, size, provisioning, source=None):
        """Create volume `name`; source: a model.Source to copy (its data
        reference, the steps its backend needs around the copy)."""
        raise NotImplementedError

    def plan_update(self, volume, fmt=None, size=None, provisioning=None):
        """Grow `volume` to size, adopt it (record what another tool made),
        enforce ownership: what changes on an existing volume."""
        raise NotImplementedError

    def plan_delete(self, name, force=False):
        raise NotImplementedError

    # ------------------------------------------------------------ snapshots
    def plan_snapshot_create(self, name, snapshot):
        raise NotImplementedError

    def plan_snapshot_delete(self, name, snapshot):
        raise NotImplementedError

    def plan_revert(self, name, snapshot):
        raise NotImplementedError

    # ------------------------------------------------------------ data
    def data_ref(self, volume, snapshot=None):
        """The DataRef of the volume's active data, or of a snapshot's point
        in time."""
        raise NotImplementedError

    def plan_read(self, volume, snapshot=None, purpose=None):
        """A model.Source for copying `volume` (its current data: frozen for
        the copy where needed) or one of its snapshots."""
        raise NotImplementedError

    def native_access(self, volume):
        """How a hypervisor reads the volume without a target: a dict with
        `kind` (nfs, glusterfs or rbd) and what its connection_info needs
        (export and options of a share), or None (it needs an iSCSI target)."""
        return None

    def can_clone_from(self, other, volume, snapshot, fmt, provisioning):
        """True when this backend can make the copy itself from `other`'s
        volume (a same-kind fast path: reflink, RBD clone, thin snapshot)."""
        return False
