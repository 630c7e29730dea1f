# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The `file` backend: volumes as files in a directory or on a mounted share,
in Cinder's layout, with qcow2 snapshot chains.

Every public method plans: it reads the state (after completing any
interrupted operation), checks it with the image-safety rules, and returns a
Plan whose steps perform the change. Steps that span several files write an
intent journal first, so that a kill at any point converges on the next run:
operations that create something roll back, operations that merge data roll
forward. The .info map is always written before a file it no longer names is
removed, and after a file it newly names exists."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import contextlib
import os
import stat

from ansible_collections.blockyard.storage.plugins.module_utils import fileio, images, locks, naming, qcow2, qemu_img
from ansible_collections.blockyard.storage.plugins.module_utils.backends.base import Backend
from ansible_collections.blockyard.storage.plugins.module_utils.errors import (
    Busy, Conflict, InvalidInput, NotFound, StorageError, UnsafeImage)
from ansible_collections.blockyard.storage.plugins.module_utils.model import Capacity, DataRef, Snapshot, Source, Volume
from ansible_collections.blockyard.storage.plugins.module_utils.plan import Plan
from ansible_collections.blockyard.storage.plugins.module_utils.runner import checkpoint
from ansible_collections.blockyard.storage.plugins.module_utils.backends.file import layout
from ansible_collections.blockyard.storage.plugins.module_utils.backends.file.bookkeeping import Bookkeeping
from ansible_collections.blockyard.storage.plugins.module_utils.backends.file.recovery import Recovery
from ansible_collections.blockyard.storage.plugins.module_utils.backends.file.snapshots import Snapshots
from ansible_collections.blockyard.storage.plugins.module_utils.backends.file.state import (
    FileVolume, _round_up)

LOCATION_KEYS = ('volume_dir', 'share', 'shares', 'shares_config')
MAX_CHAIN_DEPTH = 256
REFLINK_FS = frozenset(['xfs', 'btrfs'])
DEFAULT_MODE = 0o660


class FileBackend(Recovery, Snapshots, Backend):
    """Volumes as files in a directory or on a mounted NFS/GlusterFS share."""
    kind = 'file'
    capabilities = frozenset(['qcow2', 'thick', 'revert_latest', 'clone_reflink', 'adopt'])
    reserved_snapshot_names = layout.RESERVED_SNAPSHOT_NAMES
    package = 'qemu-utils (qemu-img)'

    def __init__(self, directory, owner=None, group=None, mode=None, provider_location=None, cinder_names=False,
                 share_options=None):
        if not os.path.isabs(directory):
            raise InvalidInput('The volume directory %r must be an absolute path.' % directory)
        if not os.path.isdir(directory):
            raise InvalidInput('The volume directory %s does not exist or is not a directory: create it (or mount '
                               'the share) first.' % directory, path=directory)
        self.directory = os.path.realpath(directory)
        # resolved now, so that check mode already refuses an unknown owner
        self.uid, self.gid = fileio.resolve_owner(owner, group)
        self.mode = mode
        self.explicit = owner is not None or group is not None or mode is not None
        self.provider_location = provider_location or self.directory
        self.share_options = share_options
        self.cinder_names = cinder_names
        self.warnings = []

    # ------------------------------------------------------------------ locations
    @classmethod
    def locations(cls, params):
        """The volume_dir, or the mounted shares of share/shares/shares_config
        (each directory is one FileBackend); notes on unusable shares."""
        from ansible_collections.blockyard.storage.plugins.module_utils import shares  # lazy: share locations only
        keys = [key for key in LOCATION_KEYS if params.get(key)]
        if not keys:
            raise InvalidInput('No place for volumes was given: set volume_dir (a local directory), share, shares or '
                               'shares_config.')
        if 'volume_dir' in keys and len(keys) > 1:
            raise InvalidInput('volume_dir and %s are mutually exclusive: volumes live either in a local directory or '
                               'on shares.' % ', '.join(k for k in keys if k != 'volume_dir'))

        def make(directory, location=None, options=None):
            return cls(directory, owner=params.get('owner'), group=params.get('group'),
                       mode=naming.parse_mode(params.get('mode')), provider_location=location,
                       cinder_names=bool(params.get('cinder_compatible_names')), share_options=options)
        if params.get('volume_dir'):
            if not os.path.isabs(params['volume_dir']):
                raise InvalidInput('volume_dir %r must be an absolute path.' % params['volume_dir'])
            return [make(params['volume_dir'])], []
        base = params.get('mount_point_base') or shares.DEFAULT_MOUNT_POINT_BASE
        lines = shares.share_lines(params)
        if params.get('share') and len(lines) == 1:
            return [make(shares.require_mounted(base, lines[0].share), lines[0].share, lines[0].options)], []
        found, notes = [], []
        for line in lines:
            try:
                found.append(make(shares.require_mounted(base, line.share), line.share, line.options))
            except StorageError as exc:     # an unmounted share is skipped, and said
                notes.append('%s: %s' % (line.share, exc.msg))
        if not found:
            raise InvalidInput('None of the shares is mounted and usable: %s' % '; '.join(notes))
        return found, notes

    @property
    def location(self):
        return self.provider_location

    @property
    def unlimited_by_default(self):
        return self.provider_location == self.directory     # volume_dir, not a share

    def lock_key(self, name):
        return (self.directory, name)

    def refuse_in_use(self, volume, doing):
        """Busy when a process of this host holds a file of the volume's
        chain open (a running guest, tgtd serving it as a LUN, another
        tool): a snapshot, revert, extension or delete under it would corrupt
        what it sees, or keep serving a deleted file. Hosts that mount the
        same share are not visible from here."""
        paths = set(item.path for item in volume.chain)
        users = fileio.open_by_others(paths)
        if users:
            raise Busy('Cannot %s: %s %s open (%s). Stop or detach the user first (for an iSCSI export: '
                       'blockyard.storage.export with state=absent), then re-run. Nothing was changed.'
                       % (doing, ', '.join(sorted(os.path.basename(p) for p in set(u[2] for u in users))),
                          'is' if len(set(u[2] for u in users)) == 1 else 'are',
                          ', '.join('pid %d (%s)' % (pid, comm) for pid, comm, _p in users)),
                       volume=volume.name, pids=[u[0] for u in users])

    @contextlib.contextmanager
    def lock(self, name):
        """The POSIX lock on volume-<name>.lock beside the volume (honoured
        across hosts on GlusterFS and NFS with locking); the lock file goes
        when the volume does not exist afterwards."""
        with locks.volume_lock(self.directory, name):
            try:
                yield
            finally:
                if not self.exists(name):
                    locks.remove_lock(self.directory, name)

    def check_lock(self, name):
        locks.check_lock_file(self.directory, name)

    def has_lone_lock(self, name):
        return not self.exists(name) and os.path.lexists(locks.lock_path(self.directory, name))

    # ------------------------------------------------------------------ reading
    def book(self, name):
        return Bookkeeping(self.directory, name)

    def path(self, filename):
        return os.path.join(self.directory, filename)

    def exists(self, name):
        """A volume exists when its base file or its snapshot map does (a
        .meta or .lock alone is a leftover, e.g. of Cinder's delete)."""
        book = self.book(name)
        return os.path.lexists(book.path(book.base)) or os.path.lexists(book.info_path)

    def pending(self, name):
        return self._pending(self.book(name))

    def _pending(self, book):
        """The journal of an interrupted operation (None), or a dict with the
        error of a journal that does not validate."""
        try:
            return book.read_journal()
        except StorageError as exc:
            return {'op': None, 'error': exc.msg}

    def load(self, name, fmt=None, size=None):
        state = self.load_state(name, fmt, size)
        return None if state is None else self._model(state)

    def load_state(self, name, fmt=None, size=None):
        """Read and check volume `name` (a FileVolume); None when it does
        not exist.

        fmt states the format of a volume adopted from a Cinder share (no
        .meta); a recorded format is never re-probed. size: a size the
        operator restates, which may adopt a larger virtual size."""
        book = self.book(name)
        meta = book.read_meta()
        info = book.read_info(check_files=False)   # files checked below, along the chain walk
        base_path = book.path(book.base)
        base_st = fileio.lstat_regular(base_path)   # refuses links, FIFOs, directories, hard links
        if info is None and base_st is None:
            return None
        pending = self._pending(book)
        managed = meta is not None
        active = book.active(info)
        if info is not None:
            book.check_file('active', active)
        if managed:
            base_fmt = meta['format']
        elif fmt:
            base_fmt = fmt
        elif active == book.base and base_st is not None and qcow2.is_qcow2(base_path):
            raise UnsafeImage('Volume %s has no record of its format and its file %s starts with a qcow2 header: it '
                              'was not made by this collection (a Cinder qcow2 volume, or a raw volume whose guest '
                              'wrote that header). Adopt it once with blockyard.storage.volume name=%s format=qcow2 '
                              '(or format=raw if it is a raw volume); nothing was touched.'
                              % (name, book.base, name), path=base_path, volume=name)
        else:
            base_fmt = None     # raw, or what the overlay above it records
        top_fmt = 'qcow2' if active != book.base else (base_fmt or 'raw')
        limits = [meta['size_bytes'] if managed else None, size]
        if pending and pending.get('op') == 'extend':
            limits.append(pending['size'])
        limit = None if limits[0] is None else max(v for v in limits if v is not None)
        try:
            chain = qcow2.walk_chain(book.path(active), book.pattern, expected_top_format=top_fmt,
                                     max_depth=MAX_CHAIN_DEPTH)
        except UnsafeImage as exc:
            raise UnsafeImage('Volume %s failed the image-safety checks: %s Nothing was touched. Its files were '
                              'changed outside this collection (by a guest or a tool); inspect them with '
                              '"qemu-img info -U" and restore them, or delete the volume.'
                              % (name, exc.msg), **dict(exc.details, volume=name))
        walked = set(item.file for item in chain)
        for key, value in (info or {}).items():
            if value not in walked:
                book.check_file(key, value)
        bottom = chain[-1]
        if base_st is None:
            # Nova deleted the only snapshot of an attached volume: the
            # overlay is now a standalone qcow2 and the base is gone
            if bottom.format != 'qcow2' or bottom.backing_file is not None:
                raise UnsafeImage('Volume %s has no base file %s and its chain ends at %s: the chain is broken. '
                                  'Restore the file, or delete the volume.' % (name, book.base, bottom.file),
                                  path=base_path)
            base_fmt = 'qcow2'
        elif bottom.file != book.base or (base_fmt is not None and bottom.format != base_fmt):
            raise UnsafeImage('The chain of volume %s ends at %s (%s), not at its base file %s (%s): refusing to '
                              'touch it. Inspect the files and the .info map.'
                              % (name, bottom.file, bottom.format, book.base, base_fmt), path=bottom.path)
        base_fmt = base_fmt or bottom.format
        larger = [item for item in chain if limit is not None and item.virtual_size > limit]
        if larger:
            # a qcow2 header's virtual size, or a raw file's own size (Cinder's
            # extend grows it in place, its snapshots make whole-GiB overlays)
            grown = max(larger, key=lambda item: item.virtual_size)
            raise UnsafeImage('Volume %s: %s holds a virtual size of %d bytes (%s), above the %d bytes allowed (the '
                              'recorded size, or the size restated). Another tool (Cinder\'s extend or its whole-GiB '
                              'snapshots) may have grown it: if so, restate size: %s (or more) with '
                              'blockyard.storage.volume to adopt that size. Nothing was touched.'
                              % (name, grown.file, grown.virtual_size, naming.human_size(grown.virtual_size), limit,
                                 naming.human_size(_round_up(grown.virtual_size, 1024 ** 2))),
                              path=grown.path, volume=name, reason='too_large', virtual_size=grown.virtual_size)
        if managed:
            return FileVolume(book, base_fmt, meta['size_bytes'], meta['provisioning'], info, chain, True, pending)
        return FileVolume(book, base_fmt, chain[0].virtual_size, 'thin', info, chain, False, pending)

    def require_state(self, name, fmt=None, size=None):
        volume = self.load_state(name, fmt, size)
        if volume is None:
            raise NotFound('Volume %s does not exist in %s: create it first (blockyard.storage.volume).'
                           % (name, self.provider_location))
        return volume

    def _model(self, volume):
        """The neutral Volume of a FileVolume; file-only facts in details."""
        chain = []
        for item in volume.chain:
            chain.append({'file': item.file, 'path': item.path, 'format': item.format,
                          'backing_file': item.backing_file, 'backing_format': item.backing_format,
                          'virtual_bytes': item.virtual_size, 'allocated_bytes': item.allocated,
                          'apparent_bytes': item.apparent})
        pending = volume.pending
        affected = set()
        if pending and pending.get('snapshot'):
            affected = set([pending['snapshot']])
        elif pending and pending.get('op') in ('delete', None):
            affected = set(volume.snapshots)
        snapshots = []
        for snap in volume.ordered_snapshots():
            filename = volume.snapshots[snap]
            entry = volume.entry(filename)
            data = volume.entry(entry.backing_file) if entry and entry.backing_file else None
            # the size of its point in time (the data file): the overlay of
            # the latest snapshot grows when the volume is extended
            size = (data or entry).virtual_size if entry else None
            snapshots.append(Snapshot(snap, volume.name, size, pending=snap in affected, details={
                'overlay': filename, 'overlay_path': self.path(filename),
                'data_file': entry.backing_file if entry else None, 'stale': entry is None}))
        return Volume(volume.name, self.kind, self.location, volume.size, volume.provisioning, volume.format,
                      allocated=sum(item.allocated for item in volume.chain), managed=volume.managed,
                      snapshots=snapshots, active=self._ref(volume.chain[0]),
                      pending=dict(pending, journal=os.path.basename(volume.book.journal_path)) if pending else None,
                      details={'directory': self.directory, 'path': volume.chain[0].path,
                               'active_file': volume.active, 'active_format': volume.active_format,
                               'virtual_bytes': volume.chain[0].virtual_size,
                               'snapshot_map': volume.info or {'active': volume.active}, 'chain': chain},
                      handle=volume)

    def snapshot_details(self, volume, snapshot):
        return dict(snapshot.details, snapshot_map=volume.details['snapshot_map'])

    def native_access(self, volume):
        """A volume on a mounted NFS or GlusterFS share is read by the
        hypervisor through its own mount of the share; one in a local
        directory is not (None)."""
        if self.provider_location == self.directory:
            return None
        fstype = fileio.fs_type(self.directory) or ''
        kind = 'glusterfs' if 'glusterfs' in fstype else 'nfs' if fstype.startswith('nfs') else None
        if kind is None:
            return None
        return {'kind': kind, 'export': self.provider_location, 'options': self.share_options}

    @staticmethod
    def _ref(entry):
        return DataRef('file', entry.format, entry.virtual_size, path=entry.path)

    def data_ref(self, volume, snapshot=None):
        state = volume.handle
        if snapshot is None:
            return self._ref(state.chain[0])
        return self._ref(self._snapshot_data(state, snapshot))

    def _snapshot_data(self, state, snap):
        """The chain entry holding the point in time of snapshot snap."""
        if snap not in state.snapshots:
            raise NotFound('Snapshot %s of volume %s does not exist in %s: choose one of %s.'
                           % (snap, state.name, self.location, ', '.join(state.ordered_snapshots()) or 'none'))
        entry = state.entry(state.snapshots[snap])
        if entry is None or entry.backing_file is None:
            raise UnsafeImage('Snapshot %s of volume %s is stale (its overlay is not in the chain): its point in '
                              'time is lost; cannot copy it. Delete the snapshot.' % (snap, state.name))
        return state.entry(entry.backing_file)

    def list_names(self):
        """Names of the volumes here: a base file volume-<name> or a map
        volume-<name>.info (a .meta alone is a leftover, not a volume)."""
        names = set()
        for entry in os.listdir(self.directory):
            if not entry.startswith('volume-'):
                continue
            rest = entry[len('volume-'):]
            if rest.endswith('.info'):
                rest = rest[:-len('.info')]
            if naming.NAME_RE.fullmatch(rest):
                names.add(rest)
        return sorted(names)

    def volume_entries(self, book):
        """Every directory entry of a volume (the naming rule makes each one
        belong to exactly one volume): its chain files, sidecars and hidden
        temporaries. The lock file is left to its holder."""
        prefix = '.%s.' % book.base
        found = []
        for entry in os.listdir(self.directory):
            if book.pattern.fullmatch(entry) or entry in (os.path.basename(book.info_path),
                                                          os.path.basename(book.meta_path),
                                                          os.path.basename(book.journal_path)):
                found.append(entry)
            elif entry == book.part or (entry.startswith(prefix) and (entry.endswith('.tmp')
                                                                      or entry.endswith('.revert'))):
                found.append(entry)
        return sorted(found)

    def capacity(self, known=None, volumes=True):
        """Capacity of the location. known: {name: Volume result} of
        volumes already read, so that their files are not read again.
        volumes=False: the filesystem's figures only (no per-volume sums)."""
        st = os.statvfs(self.directory)
        total = st.f_frsize * st.f_blocks
        result = Capacity(self.location, total, st.f_frsize * st.f_bavail, total - st.f_frsize * st.f_bfree,
                          details={'directory': self.directory})
        if not volumes:
            return result
        allocated = 0
        # every file of every volume counts, leftovers and copies in flight too
        for entry in os.listdir(self.directory):
            if entry.startswith('volume-') or entry.startswith('.volume-'):
                try:
                    est = os.lstat(self.path(entry))
                except OSError:
                    continue
                if stat.S_ISREG(est.st_mode):
                    allocated += est.st_blocks * 512
        provisioned = self.provisioned(known, self._recorded_size)
        result.allocated, result.provisioned = allocated, provisioned
        return result

    def _recorded_size(self, name):
        """A volume's size without reading its chain: its record, else the
        size of its base file (a volume adopted from Cinder)."""
        try:
            meta = self.book(name).read_meta()
        except StorageError:
            meta = None
        if meta:
            return meta['size_bytes']
        path = self.path(layout.volume_file(name))
        bst = os.lstat(path) if os.path.lexists(path) else None
        return bst.st_size if bst is not None and stat.S_ISREG(bst.st_mode) else None

    # ------------------------------------------------------------ ownership
    def _ownership_for(self, like=None):
        """(uid, gid, mode) for a file a module makes: the options where
        given, else those of `like` (the file it sits on or replaces), else
        root's with mode 0660 (a new volume)."""
        base = fileio.ownership_of(like) if like else None
        uid, gid, mode = base if base else (-1, -1, DEFAULT_MODE)
        return (self.uid if self.uid != -1 else uid, self.gid if self.gid != -1 else gid,
                self.mode if self.mode is not None else mode)

    def _own(self, path, like=None):
        fileio.apply_ownership(path, *self._ownership_for(like))

    def _plan_ownership(self, plan, volume):
        """Ownership and mode are enforced only when given (files of a volume
        adopted from Cinder keep theirs)."""
        if not self.explicit:
            return
        for filename in volume.files():
            path = self.path(filename)
            if fileio.ownership_differs(path, self.uid, self.gid, self.mode):
                plan.add('set owner/group/mode of %s' % filename, fileio.apply_ownership, path, self.uid, self.gid,
                         self.mode)
                plan.diff_changes.append(filename)

    # ------------------------------------------------------------ volumes
    def plan_update(self, volume, fmt=None, size=None, provisioning=None):
        """Grow the volume to size, record a volume adopted from Cinder (or a
        size another tool grew it to), enforce owner/group/mode when given."""
        plan = Plan('volume_present')
        state = volume.handle
        name = state.name
        fmt = fmt or state.format
        if provisioning and state.managed and provisioning != state.provisioning:
            plan.warnings.append('Volume %s is recorded as %s; provisioning=%s is ignored for an existing volume '
                                 '(no conversion in place).' % (name, state.provisioning, provisioning))
        provisioning = state.provisioning     # no conversion in place: an extension keeps it
        if state.format != fmt:
            raise Conflict('Volume %s exists as %s, not %s: a volume\'s format cannot be changed in place. Use '
                           'format=%s, or create a new volume from it (source_volume) in the other format.'
                           % (name, state.format, fmt, state.format))
        recorded = state.size
        if state.managed and state.virtual_size > state.size:
            # size was restated at or above what another tool grew it to
            plan.warnings.append('Volume %s holds %s although %s was recorded (grown by another tool, e.g. Cinder): '
                                 'adopting the larger size.'
                                 % (name, naming.human_size(state.virtual_size), naming.human_size(state.size)))
            plan.add('record the size %s of volume %s (grown outside this collection)'
                     % (naming.human_size(state.virtual_size), name),
                     state.book.write_meta, state.format, state.virtual_size, provisioning)
            recorded = state.virtual_size
        elif not state.managed:
            plan.add('record volume %s as %s, %s (adopted, no record yet)' % (name, fmt, naming.human_size(recorded)),
                     state.book.write_meta, fmt, recorded, provisioning)
        if size is not None and size < recorded:
            raise Conflict('Volume %s is %d bytes (%s); refusing to shrink it to %d bytes (%s): shrinking loses '
                           'data. Give size >= %s.' % (name, recorded, naming.human_size(recorded), size,
                                                       naming.human_size(size), naming.human_size(recorded)))
        if size is not None and size > recorded:
            self.refuse_in_use(state, 'extend volume %s' % name)
            text = 'extend volume %s from %s to %s (%s)' % (
                name, naming.human_size(recorded), naming.human_size(size), state.active)
            plan.add(text, self._extend, state, recorded, size, provisioning)
        self._plan_ownership(plan, state)
        after = self._model(state)
        after.size, after.managed = max(size or 0, recorded), True
        plan.after = after
        return plan, volume

    def plan_create(self, name, fmt, size, provisioning, source=None):
        plan = Plan('volume_present')
        book = self.book(name)
        if source is None and size is None:
            raise InvalidInput('Volume %s does not exist and no size was given: give size to create it.' % name)
        for leftover in (book.part, os.path.basename(book.meta_path)):
            fileio.lstat_regular(book.path(leftover))   # refuses a link or directory planted there
        journal = {'op': 'create', 'part': book.part}
        plan.on_failure(self._rollback_create, book)
        plan.add('', book.write_journal, journal)
        if source is None:
            how = {'raw': {'thin': 'sparse raw file', 'thick': 'fully allocated raw file'},
                   'qcow2': {'thin': 'qcow2 (preallocation=metadata)', 'thick': 'qcow2 (preallocation=metadata)'}}
            plan.add('create %s %s of %s' % (how[fmt][provisioning], book.base, naming.human_size(size)),
                     self._create_blank, book.path(book.part), fmt, size, provisioning)
            final_size = size
        else:
            final_size = self._plan_copy(plan, book, fmt, size, provisioning, source)
        plan.add('set owner/group/mode of %s' % book.base, self._own, book.path(book.part))
        plan.add('move %s into place' % book.base, self._place, book, book.part, journal)
        plan.add('record volume %s (%s, %s, %s)' % (name, fmt, provisioning, naming.human_size(final_size)),
                 book.write_meta, fmt, final_size, provisioning)
        plan.add('', book.clear_journal)
        plan.after = Volume(name, self.kind, self.location, final_size, provisioning, fmt, managed=True,
                            details={'directory': self.directory, 'path': book.path(book.base),
                                     'active_file': book.base, 'active_format': fmt, 'virtual_bytes': final_size,
                                     'snapshot_map': {'active': book.base}, 'predicted': True})
        return plan, None

    def _undo(self, book, journal):
        """The undo of a snapshot create or a revert that failed cleanly
        (ENOSPC, a qemu-img error): what its recovery would do, now, so that
        no journal is left to block the next task."""
        if book.read_journal() == journal:
            getattr(self, '_recover_%s' % journal['op'])(book, journal)
            book.clear_journal()

    def _rollback_create(self, book):
        """A create that failed cleanly (ENOSPC, a qemu-img error): remove
        what it made, journal included, so that nothing is left behind."""
        journal = book.read_journal()
        if journal and journal.get('op') == 'create':
            self._recover_create(book, journal)
            book.clear_journal()

    def _place(self, book, part, journal):
        base_path = book.path(book.base)
        if os.path.lexists(base_path):
            raise Conflict('Cannot create volume %s: %s appeared while it was being made. Nothing was replaced.'
                           % (book.volume, base_path))
        fileio.fsync_file(book.path(part))      # the data reaches the disk before any record names it
        book.write_journal(dict(journal, made_base=True))
        fileio.rename(book.path(part), base_path)

    def _create_blank(self, path, fmt, size, provisioning):
        fileio.unlink(path)
        if fmt == 'qcow2':
            qemu_img.create(path, 'qcow2', size, preallocation='metadata')
        elif provisioning == 'thick':
            fileio.create_thick(path, size)
        else:
            fileio.create_sparse(path, size)

    def _plan_copy(self, plan, book, fmt, size, provisioning, source):
        """Copy steps from a Source: the same-filesystem reflink where it can
        be used, else the source backend's steps around a qemu-img copy."""
        part = book.path(book.part)
        if source.backend is not None and self.can_clone_from(source.backend, source.volume, source.snapshot, fmt,
                                                              provisioning):
            plan.add('reflink copy of %s into %s (full copy where the filesystem refuses)'
                     % (os.path.basename(source.ref.path), book.base), self._reflink_or_copy, source.ref, part)
        else:
            if source.prepare is not None:
                plan.extend(source.prepare)
            plan.add('copy %s into %s as %s' % (source.description, book.base, fmt),
                     images.copy, source.ref, part, fmt, provisioning)
            if source.release is not None:
                plan.extend(source.release)
        # an image of a size that is not whole sectors is padded with zeros:
        # qcow2 overlays of it would be unusable otherwise
        whole = _round_up(source.size, 512)
        final = whole if size is None else size
        if final < source.size:
            raise Conflict('Volume %s would be %s but its source is %s: a copy cannot be smaller than its source. '
                           'Give size >= %s or leave it out.' % (book.volume, naming.human_size(final),
                                                                 naming.human_size(source.size),
                                                                 naming.human_size(whole)))
        if final > source.size:
            plan.add('grow %s to %s' % (book.base, naming.human_size(final)),
                     self._resize, part, fmt, final, provisioning)
        return final

    def can_clone_from(self, other, volume, snapshot, fmt, provisioning):
        """A reflink: a raw single-file volume, copied thin and raw, on the
        same filesystem, where that filesystem can share extents."""
        if other.kind != self.kind or snapshot is not None or fmt != 'raw' or provisioning != 'thin':
            return False
        state = volume.handle
        if state.format != 'raw' or state.active != state.book.base:
            return False
        try:
            same_fs = os.stat(other.directory).st_dev == os.stat(self.directory).st_dev
        except OSError:
            return False
        return same_fs and fileio.fs_type(self.directory) in REFLINK_FS

    def plan_read(self, volume, snapshot=None, purpose=None):
        """A Source for a copy of volume: a snapshot's data file as it is, or
        the current data frozen by a temporary snapshot (tmp-snap-<purpose>,
        as Cinder names it) that the copy's release step removes again. A
        failed copy puts the source back exactly as it was."""
        state = volume.handle
        if snapshot is not None:
            data = self._snapshot_data(state, snapshot)
            return Source(self._ref(data), data.virtual_size,
                          'snapshot %s of volume %s (%s)' % (snapshot, state.name, data.file),
                          backend=self, volume=volume, snapshot=snapshot)
        tmp = layout.temporary_snapshot(state.name, purpose or 'copy')
        if tmp in state.snapshots:
            raise Conflict('Volume %s already has a snapshot %s: a copy into %s is in progress or was interrupted. '
                           'Re-run after it ends.' % (state.name, tmp, purpose))
        journal = {'op': 'clone', 'snapshot': tmp, 'had_info': state.info is not None}
        prepare, release = Plan('clone_prepare'), Plan('clone_release')
        # undone after the copy's part file is gone: on ENOSPC that frees the
        # room the source's map needs to be put back
        prepare.on_failure(self._abandon_clone, state.book, tmp, journal['had_info'], last=True)
        prepare.add('', state.book.write_journal, journal)
        prepare.add('create temporary snapshot %s of %s' % (tmp, state.name),
                    self._snapshot_create_files, state.book, tmp, state.active, state.active_format,
                    state.chain[0].virtual_size)
        release.add('delete temporary snapshot %s of %s' % (tmp, state.name), self._drop_temporary_snapshot,
                    state.book, tmp, journal['had_info'])
        release.add('', state.book.clear_journal)
        return Source(self._ref(state.chain[0]), state.size,
                      'the point in time of %s (%s, volume %s)' % (tmp, state.active, state.name),
                      prepare, release, backend=self, volume=volume)

    def _abandon_clone(self, book, tmp, had_info):
        """A copy that failed cleanly: the source goes back to exactly what
        it was (its map and files), and its journal goes."""
        journal = book.read_journal()
        if journal and journal.get('op') == 'clone':
            self._drop_temporary_snapshot(book, tmp, had_info)
            book.clear_journal()

    def _drop_temporary_info(self, book, had_info):
        """A copy of a volume that had no .info made one only for its
        temporary snapshot: remove it again, the source stays as it was."""
        if had_info is False and book.read_info(check_files=False) == {'active': book.base}:
            fileio.unlink(book.info_path)
            fileio.fsync_dir(self.directory)

    @staticmethod
    def _reflink_or_copy(ref, dst_path):
        fileio.unlink(dst_path)
        if fileio.reflink(ref.path, dst_path):
            fileio.fsync_file(dst_path)
        else:
            images.copy(ref, dst_path, 'raw', 'thin')

    def _allocate(self, path, start, end):
        try:
            fd, _st = fileio.open_regular(path, os.O_WRONLY, 'the image')
        except OSError as exc:
            raise fileio.os_error(exc, 'Extending', path)
        try:
            fileio.allocate_zeros(path, fd, start, end - start)
            os.fsync(fd)
        except OSError as exc:
            raise fileio.os_error(exc, 'Allocating bytes %d..%d of the thick volume file' % (start, end), path)
        finally:
            os.close(fd)

    def _resize(self, path, fmt, size, provisioning):
        if fmt == 'raw':
            st = fileio.lstat_regular(path)
            current = st.st_size
            if current >= size:
                return
            fileio.truncate(path, size)
            if provisioning == 'thick':
                self._allocate(path, current, size)
        else:
            header = qcow2.read_header(path)
            if header.size < size:
                qemu_img.resize(path, 'qcow2', size)
                fileio.fsync_file(path)
        actual = fileio.lstat_regular(path).st_size if fmt == 'raw' else qcow2.read_header(path).size
        if actual != size:
            raise StorageError('Resized %s to %d bytes but it reports %d: check the filesystem and re-run.'
                               % (path, size, actual), path=path)

    def _extend(self, volume, recorded, size, provisioning):
        book = volume.book
        top = volume.chain[0]
        book.write_journal({'op': 'extend', 'from': top.virtual_size, 'size': size, 'file': top.file,
                            'format': top.format})
        checkpoint('extend.journaled')
        try:
            self._resize(top.path, top.format, size, provisioning)
        except StorageError:
            self._undo_extend(volume)
            raise
        checkpoint('extend.resized')
        book.write_meta(volume.format, size, provisioning)
        book.clear_journal()

    def _undo_extend(self, volume):
        """An extension that failed cleanly (ENOSPC...): put the active file
        back to its size and drop the journal, so that the volume stays usable
        (and deletable) instead of every later run retrying the extension.
        Where the size cannot be restored the journal stays."""
        top = volume.chain[0]
        try:
            if top.format == 'raw':
                if fileio.lstat_regular(top.path).st_size > top.virtual_size:
                    fileio.truncate(top.path, top.virtual_size)
            elif qcow2.read_header(top.path).size != top.virtual_size:
                return
        except (OSError, StorageError):
            return
        volume.book.clear_journal()

    def plan_delete(self, name, force=False):
        plan = Plan('volume_absent')
        book = self.book(name)
        entries = self.volume_entries(book)
        for entry in entries:
            st = os.lstat(self.path(entry))
            if stat.S_ISDIR(st.st_mode):
                raise fileio.UnsafeFile('%s is a directory, not a file of volume %s: refusing to delete the volume '
                                        'while it is there. Inspect it and remove it by hand.'
                                        % (self.path(entry), name), path=self.path(entry))
        if not self.exists(name):
            if entries:
                plan.add('remove leftover files of volume %s: %s' % (name, ', '.join(entries)),
                         self._delete_files, book)
            return plan, None
        volume = None
        try:
            volume = self.load_state(name)
            snaps = volume.snapshots
        except StorageError as exc:
            if not force:
                try:
                    snaps = Bookkeeping.snapshots(book.read_info(check_files=False))
                except StorageError:
                    raise type(exc)('Volume %s cannot be read (%s) Delete it with force=true to remove all of its '
                                    'files.' % (name, exc.msg), **exc.details)
            else:
                snaps = {}
        if snaps and not force:
            raise Conflict('Volume %s has snapshots (%s): deleting it deletes them too. Delete the snapshots first, '
                           'or set force=true.' % (name, ', '.join(sorted(snaps))))
        if volume is not None:
            self.refuse_in_use(volume, 'delete volume %s' % name)
        plan.add('', book.write_journal, {'op': 'delete'})
        plan.add('delete %s and its bookkeeping' % ', '.join(e for e in entries if not e.startswith('.')),
                 self._delete_files, book)
        plan.add('', book.clear_journal)
        return plan, (self._model(volume) if volume else None)

    def _delete_files(self, book):
        """Remove every file of a volume, found by name (each name has one
        owner): the .info first, so that it never names a removed file, then
        the chain, then the record and the temporaries. Nothing else."""
        if os.path.lexists(book.info_path):
            fileio.unlink(book.info_path)
            fileio.fsync_dir(self.directory)
            checkpoint('delete.info_removed')
        keep = (os.path.basename(book.journal_path), os.path.basename(book.meta_path))
        for entry in self.volume_entries(book):
            if entry not in keep:
                fileio.unlink(self.path(entry))
                checkpoint('delete.file')
        fileio.unlink(book.meta_path)
        fileio.fsync_dir(self.directory)

    def _predict(self, state, info):
        """The Volume a snapshot plan leaves: the snapshots of the map `info`
        (check mode reports it, the diff shows its snapshot list)."""
        after = self._model(state)
        known = dict((snap.name, snap) for snap in after.snapshots)
        new = sorted(s for s in info if s != 'active' and s not in known)
        order = [s for s in state.ordered_snapshots() if s in info] + new
        after.snapshots = [known.get(s) or Snapshot(s, state.name, state.virtual_size, details={
            'overlay': info[s], 'overlay_path': self.path(info[s]), 'data_file': state.active, 'stale': False})
            for s in order]
        after.details = dict(after.details, snapshot_map=info, active_file=info['active'])
        return after

    def _record_adopted(self, plan, volume):
        """A volume adopted from Cinder whose format was inferred (from its
        overlays) is recorded when a task changes it, so that it stays known
        once Cinder has merged those overlays away."""
        if plan and not volume.managed:
            plan.steps.insert(0, ('record volume %s as %s, %s (adopted, no record yet)'
                                  % (volume.name, volume.format, naming.human_size(volume.size)),
                                  volume.book.write_meta, (volume.format, volume.size, volume.provisioning), {}))
        return plan
