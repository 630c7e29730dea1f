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

import os
import stat

from ansible_collections.blockyard.storage.plugins.module_utils import fileio, naming, qcow2, qemu_img
from ansible_collections.blockyard.storage.plugins.module_utils.backends.base import Backend
from ansible_collections.blockyard.storage.plugins.module_utils.errors import (
    Conflict, InvalidInput, NotFound, StorageError, UnsafeImage)
from ansible_collections.blockyard.storage.plugins.module_utils.plan import Plan
from ansible_collections.blockyard.storage.plugins.module_utils.runner import checkpoint
from ansible_collections.blockyard.storage.plugins.module_utils.snapinfo import Bookkeeping

MAX_CHAIN_DEPTH = 256
REFLINK_FS = frozenset(['xfs', 'btrfs'])
DEFAULT_MODE = 0o660
OPERATIONS = {'delete': 'delete', 'create': 'create', 'extend': 'extension', 'snapshot_create': 'snapshot create',
              'snapshot_delete': 'snapshot delete', 'revert': 'revert', 'clone': 'clone'}


class JournalStale(StorageError):
    """The premises of an interrupted operation no longer hold (another tool
    changed the chain since): its journal is discarded, not replayed."""


class FileVolume:
    """What is on disk for one volume, checked."""

    def __init__(self, book, fmt, size, provisioning, info, chain, managed, pending=None):
        self.book = book
        self.name = book.volume
        self.format = fmt                  # format of the base (bottom) file
        self.size = size                   # recorded size in bytes
        self.provisioning = provisioning
        self.info = info                   # the .info map or None
        self.chain = chain                 # qcow2.ChainEntry list, active first
        self.managed = managed             # False: adopted, no .meta yet
        self.pending = pending             # the journal of an interrupted operation, or None
        self._by_file = dict((item.file, item) for item in chain)
        self._by_backing = dict((item.backing_file, item) for item in chain if item.backing_file)

    @property
    def active(self):
        return self.chain[0].file

    @property
    def active_format(self):
        return self.chain[0].format

    @property
    def base(self):
        """The bottom file: volume-<name>, or the standalone overlay Nova's
        online snapshot delete leaves when it removed the base."""
        return self.chain[-1].file

    @property
    def virtual_size(self):
        return self.chain[0].virtual_size

    @property
    def snapshots(self):
        return Bookkeeping.snapshots(self.info)

    def ordered_snapshots(self):
        """Snapshot names oldest first: by the depth of their overlay in the
        chain (an older snapshot's overlay sits lower); stale ones last."""
        depth = dict((item.file, index) for index, item in enumerate(self.chain))
        return sorted(self.snapshots, key=lambda s: (-depth.get(self.snapshots[s], -1), s))

    def entry(self, filename):
        return self._by_file.get(filename)

    def above(self, filename):
        """The chain file whose backing file is filename (None for the top)."""
        return self._by_backing.get(filename)

    def files(self):
        names = set([self.book.base]) | set(item.file for item in self.chain)
        names |= set(self.snapshots.values())
        return sorted(names)


class FileBackend(Backend):
    kind = 'file'

    def __init__(self, directory, owner=None, group=None, mode=None, provider_location=None, cinder_names=False):
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
        self.cinder_names = cinder_names
        self.warnings = []

    # ------------------------------------------------------------------ reading
    def book(self, name):
        return Bookkeeping(self.directory, name)

    def path(self, filename):
        return os.path.join(self.directory, filename)

    def validate_name(self, name, what='volume'):
        return naming.validate_name(name, what, self.cinder_names)

    def validate_snapshot_name(self, name):
        return naming.validate_snapshot_name(name, self.cinder_names)

    def exists(self, name):
        """A volume exists when its base file or its snapshot map does (a
        .meta or .lock alone is a leftover, e.g. of Cinder's delete)."""
        book = self.book(name)
        return os.path.lexists(book.path(book.base)) or os.path.lexists(book.info_path)

    def pending(self, book):
        """The journal of an interrupted operation (None), or a dict with the
        error of a journal that does not validate."""
        try:
            return book.read_journal()
        except StorageError as exc:
            return {'op': None, 'error': exc.msg}

    def load(self, name, fmt=None, size=None):
        """Read and check volume `name`; None when it does not exist.

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
        pending = self.pending(book)
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
                                     max_depth=MAX_CHAIN_DEPTH, max_virtual_size=limit)
        except UnsafeImage as exc:
            details = dict(exc.details, volume=name)
            if exc.details.get('reason') == 'too_large':
                raise UnsafeImage('Volume %s: %s holds a virtual size of %d bytes (%s), above the %d bytes allowed (the recorded size, or the '
                                  'size restated). Another tool (Cinder\'s extend or its whole-GiB snapshots) may have '
                                  'grown it: if so, restate size: %s (or more) with blockyard.storage.volume to adopt '
                                  'that size. Nothing was touched.'
                                  % (name, os.path.basename(exc.details.get('path', '')), exc.details['virtual_size'],
                                     naming.human_size(exc.details['virtual_size']), limit,
                                     naming.human_size(_round_up(exc.details['virtual_size'], 1024 ** 2))),
                                  **details)
            raise UnsafeImage('Volume %s failed the image-safety checks: %s Nothing was touched. Its files were '
                              'changed outside this collection (by a guest or a tool); inspect them with '
                              '"qemu-img info -U" and restore them, or delete the volume.'
                              % (name, exc.msg), **details)
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
            # a raw file is its own size: Cinder's extend grows it in place
            grown = max(item.virtual_size for item in larger)
            raise UnsafeImage('Volume %s: %s holds %d bytes (%s), above the %d bytes allowed (the recorded size, or the size restated). Another '
                              'tool (Cinder\'s extend) may have grown it: if so, restate size: %s (or more) with '
                              'blockyard.storage.volume to adopt that size. Nothing was touched.'
                              % (name, larger[0].file, grown, naming.human_size(grown), limit,
                                 naming.human_size(_round_up(grown, 1024 ** 2))),
                              path=larger[0].path, volume=name, reason='too_large', virtual_size=grown)
        if managed:
            return FileVolume(book, base_fmt, meta['size_bytes'], meta['provisioning'], info, chain, True, pending)
        return FileVolume(book, base_fmt, chain[0].virtual_size, 'thin', info, chain, False, pending)

    def require(self, name, fmt=None, size=None):
        volume = self.load(name, fmt, size)
        if volume is None:
            raise NotFound('Volume %s does not exist in %s: create it first (blockyard.storage.volume).'
                           % (name, self.provider_location))
        return volume

    def describe(self, volume):
        if volume is None:
            return None
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
            snapshots.append({'name': snap, 'overlay': filename,
                              'data_file': entry.backing_file if entry else None,
                              'stale': entry is None, 'pending': snap in affected})
        result = {
            'name': volume.name,
            'state': 'present',
            'backend': self.kind,
            'provider_location': self.provider_location,
            'directory': self.directory,
            'path': volume.chain[0].path,
            'active_file': volume.active,
            'format': volume.format,
            'active_format': volume.active_format,
            'provisioning': volume.provisioning,
            'size_bytes': volume.size,
            'virtual_bytes': volume.chain[0].virtual_size,
            'allocated_bytes': sum(item.allocated for item in volume.chain),
            'snapshots': snapshots,
            'snapshot_map': volume.info or {'active': volume.active},
            'chain': chain,
            'managed': volume.managed,
            'pending_operation': None,
        }
        if pending:
            result['pending_operation'] = dict(pending, journal=os.path.basename(volume.book.journal_path))
        return result

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
        """Capacity of the location. known: {name: describe() result} of
        volumes already read, so that their files are not read again.
        volumes=False: the filesystem's figures only (no per-volume sums)."""
        st = os.statvfs(self.directory)
        total = st.f_frsize * st.f_blocks
        result = {'location': self.provider_location, 'directory': self.directory,
                  'total_bytes': total, 'free_bytes': st.f_frsize * st.f_bavail,
                  'used_bytes': total - st.f_frsize * st.f_bfree,
                  'allocated_bytes': None, 'provisioned_bytes': None, 'apparent_over_subscription': None}
        if not volumes:
            return result
        allocated = provisioned = 0
        # every file of every volume counts, leftovers and copies in flight too
        for entry in os.listdir(self.directory):
            if entry.startswith('volume-') or entry.startswith('.volume-'):
                try:
                    est = os.lstat(self.path(entry))
                except OSError:
                    continue
                if stat.S_ISREG(est.st_mode):
                    allocated += est.st_blocks * 512
        known = known or {}
        for name in self.list_names():
            desc = known.get(name)
            if desc and 'error' not in desc:
                provisioned += desc['size_bytes']
                continue
            try:
                meta = self.book(name).read_meta()
            except StorageError:
                meta = None
            if meta:
                provisioned += meta['size_bytes']
                continue
            bst = os.lstat(self.path(naming.volume_file(name))) if os.path.lexists(
                self.path(naming.volume_file(name))) else None
            if bst is not None and stat.S_ISREG(bst.st_mode):
                provisioned += bst.st_size
        result.update(allocated_bytes=allocated, provisioned_bytes=provisioned,
                      apparent_over_subscription=round(float(provisioned) / total, 4) if total else None)
        return result

    # ------------------------------------------------------------ recovery
    def recover(self, name, check_mode=False, discard_invalid=False):
        """Complete or undo an operation on `name` interrupted by a crash, and
        remove the temporaries a kill left. Returns the actions taken (or that
        would be taken in check mode). A journal that does not validate is
        refused (discarded with a warning with discard_invalid: a forced
        delete removes everything anyway); one whose premises no longer hold
        is discarded with a warning."""
        book = self.book(name)
        actions = []
        try:
            journal = book.read_journal()
        except StorageError:
            if not discard_invalid:
                raise
            actions.append('discard the invalid journal of volume %s' % name)
            if not check_mode:
                self.warnings.append('Discarded the invalid journal %s of volume %s.' % (book.journal_path, name))
                book.clear_journal()
            journal = None
        if not journal:
            return actions + self._clean_temporaries(book, check_mode)
        op = journal['op']
        what = OPERATIONS[op]
        text = 'complete interrupted %s of volume %s' % (what, name)
        if check_mode:
            return actions + [text]
        try:
            getattr(self, '_recover_%s' % op)(book, journal)
        except JournalStale as exc:
            self.warnings.append('Discarded the journal of an interrupted %s of volume %s: %s' % (what, name, exc.msg))
            text = 'discard the stale journal of an interrupted %s of volume %s' % (what, name)
        except StorageError as exc:
            raise type(exc)('An interrupted %s of volume %s (journal %s) must be completed first: %s'
                            % (what, name, book.journal_path, exc.msg), **exc.details)
        book.clear_journal()
        return actions + [text] + self._clean_temporaries(book, check_mode)

    def _clean_temporaries(self, book, check_mode):
        """Hidden files a kill left behind when no operation is pending: temp
        files of atomic writes, the part file of a copy, a revert's overlay."""
        if os.path.lexists(book.journal_path):
            return []
        leftovers = [e for e in self.volume_entries(book) if e.startswith('.')]
        if leftovers and not check_mode:
            for entry in leftovers:
                fileio.unlink(self.path(entry))
            fileio.fsync_dir(self.directory)
        return ['remove leftover %s' % ', '.join(leftovers)] if leftovers else []

    def _recover_delete(self, book, journal):
        self._delete_files(book)

    def _recover_create(self, book, journal):
        fileio.unlink(book.path(book.part))
        if journal.get('made_base') and not os.path.lexists(book.meta_path) and not os.path.lexists(book.info_path):
            # the base file was renamed into place but its record was not
            # written: it is ours and incomplete
            fileio.unlink(book.path(book.base))
        fileio.fsync_dir(self.directory)

    def _recover_extend(self, book, journal):
        """Never grows anything: completes the record of an extension that
        reached the disk, or drops the journal of one that did not."""
        meta = book.read_meta()
        active = book.active()
        if active != journal['file']:
            raise JournalStale('the active file is now %s, not %s' % (active, journal['file']))
        path = book.path(active)
        if journal['format'] == 'raw':
            st = fileio.lstat_regular(path)
            current = st.st_size if st else None
        else:
            current = qcow2.read_header(path).size
        if current == journal['from']:
            return      # the extension never reached the file
        if current != journal['size']:
            raise JournalStale('%s is %s bytes, neither the %d before nor the %d after the extension'
                               % (active, current, journal['from'], journal['size']))
        if journal['format'] == 'raw' and meta and meta['provisioning'] == 'thick':
            self._allocate(path, journal['from'], journal['size'])
        if meta and meta['size_bytes'] < journal['size']:
            book.write_meta(meta['format'], journal['size'], meta['provisioning'])

    def _recover_snapshot_create(self, book, journal):
        info = book.read_info(check_files=False) or {}
        if journal['snapshot'] not in info and journal['file'] not in info.values():
            fileio.unlink(book.path(journal['file']))
            fileio.fsync_dir(self.directory)

    def _recover_snapshot_delete(self, book, journal):
        info = book.read_info(check_files=False) or {}
        if journal['snapshot'] in info:
            if info[journal['snapshot']] != journal['file']:
                raise JournalStale('snapshot %s now maps to %s, not %s'
                                   % (journal['snapshot'], info[journal['snapshot']], journal['file']))
            if journal['mode'] != 'stale':
                volume = self.require(book.volume)
                upper = volume.entry(journal['upper']) if journal['mode'] == 'middle' else None
                rebased = upper is not None and upper.backing_file == journal['base']
                entry = volume.entry(journal['file'])
                if not rebased and (entry is None or entry.backing_file != journal['base']):
                    raise JournalStale('%s is no longer backed by %s' % (journal['file'], journal['base']))
                if journal['mode'] == 'middle' and not rebased and (upper is None
                                                                    or upper.backing_file != journal['file']):
                    raise JournalStale('%s is no longer above %s' % (journal['upper'], journal['file']))
        elif journal['file'] in info.values():
            return      # the map changed meanwhile and still uses the file: nothing of ours to remove
        self._finish_snapshot_delete(book, journal)

    def _recover_revert(self, book, journal):
        fileio.unlink(book.path(journal['tmp']))

    def _recover_clone(self, book, journal):
        self._drop_temporary_snapshot(book, journal['snapshot'], journal['had_info'])

    def _drop_temporary_snapshot(self, book, snap, had_info):
        """Remove the temporary snapshot a clone took of its source, leaving
        the source as it was. An overlay that holds no data of its own (the
        usual case: nothing writes to it during the copy) is dropped without
        a commit, so that this works while a guest holds the volume open."""
        info = book.read_info(check_files=False) or {}
        overlay = naming.snapshot_file(book.volume, snap)
        if snap in info:
            if info[snap] == info['active'] and not self._has_new_data(book.path(overlay)):
                volume = self.require(book.volume)
                entry = volume.entry(overlay)
                if entry is not None and entry.backing_file:
                    del info[snap]
                    info['active'] = entry.backing_file
                    book.write_info(info)
                    checkpoint('clone.info_restored')
            if snap in (book.read_info(check_files=False) or {}):
                self._delete_snapshot_now(book, snap)
        if overlay not in (book.read_info(check_files=False) or {}).values():
            fileio.unlink(book.path(overlay))
            fileio.fsync_dir(self.directory)
        self._drop_temporary_info(book, had_info)

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
    def plan_present(self, name, fmt=None, size=None, provisioning=None, source=None, adopt_format=None):
        """Plan to make volume `name` exist with this format and at least
        this size. source: None, ('image', path, fmt), ('volume', FileBackend,
        name) or ('snapshot', FileBackend, volume, snapshot)."""
        plan = Plan('volume_present')
        volume = self.load(name, adopt_format or fmt, size)
        if volume is None:
            return self._plan_create(plan, name, fmt or 'raw', size, provisioning or 'thin', source), None
        fmt = fmt or volume.format
        if provisioning and volume.managed and provisioning != volume.provisioning:
            plan.warnings.append('Volume %s is recorded as %s; provisioning=%s is ignored for an existing volume '
                                 '(no conversion in place).' % (name, volume.provisioning, provisioning))
        provisioning = volume.provisioning     # no conversion in place: an extension keeps it
        if volume.format != fmt:
            raise Conflict('Volume %s exists as %s, not %s: a volume\'s format cannot be changed in place. Use '
                           'format=%s, or create a new volume from it (source_volume) in the other format.'
                           % (name, volume.format, fmt, volume.format))
        recorded = volume.size
        if volume.managed and volume.virtual_size > volume.size:
            # size was restated at or above what another tool grew it to
            plan.warnings.append('Volume %s holds %s although %s was recorded (grown by another tool, e.g. Cinder): '
                                 'adopting the larger size.'
                                 % (name, naming.human_size(volume.virtual_size), naming.human_size(volume.size)))
            plan.add('record the size %s of volume %s (grown outside this collection)'
                     % (naming.human_size(volume.virtual_size), name),
                     volume.book.write_meta, volume.format, volume.virtual_size, provisioning)
            recorded = volume.virtual_size
        elif not volume.managed:
            plan.add('record volume %s as %s, %s (adopted, no record yet)' % (name, fmt, naming.human_size(recorded)),
                     volume.book.write_meta, fmt, recorded, provisioning)
        if size is not None and size < recorded:
            raise Conflict('Volume %s is %d bytes (%s); refusing to shrink it to %d bytes (%s): shrinking loses '
                           'data. Give size >= %s.' % (name, recorded, naming.human_size(recorded), size,
                                                       naming.human_size(size), naming.human_size(recorded)))
        if size is not None and size > recorded:
            text = 'extend volume %s from %s to %s (%s)' % (
                name, naming.human_size(recorded), naming.human_size(size), volume.active)
            plan.add(text, self._extend, volume, recorded, size, provisioning)
        plan.size = max(size or 0, recorded)
        self._plan_ownership(plan, volume)
        return plan, volume

    def _plan_create(self, plan, name, fmt, size, provisioning, source):
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
            final_size = self._plan_copy(plan, book, book.part, fmt, size, provisioning, source)
        plan.add('set owner/group/mode of %s' % book.base, self._own, book.path(book.part))
        plan.add('move %s into place' % book.base, self._place, book, book.part, journal)
        plan.add('record volume %s (%s, %s, %s)' % (name, fmt, provisioning, naming.human_size(final_size)),
                 book.write_meta, fmt, final_size, provisioning)
        plan.size = final_size      # what check mode reports (a copy's size comes from its source)
        plan.add('', book.clear_journal)
        return plan

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

    def _plan_copy(self, plan, book, part, fmt, size, provisioning, source):
        kind = source[0]
        if kind == 'image':
            _kind, src_path, src_fmt = source
            header = check_source_image(src_path, src_fmt)
            src_fmt = 'qcow2' if header else 'raw'
            src_size = header.size if header else os.path.getsize(src_path)
            plan.add('copy image %s (%s) into %s as %s' % (src_path, src_fmt, book.base, fmt),
                     self._convert, src_path, src_fmt, book.path(part), fmt, provisioning)
        else:
            src_backend, src_name = source[1], source[2]
            src = src_backend.require(src_name)
            if kind == 'snapshot':
                snap = source[3]
                if snap not in src.snapshots:
                    raise NotFound('Snapshot %s of volume %s does not exist: nothing to create volume %s from.'
                                   % (snap, src_name, book.volume))
                entry = src.entry(src.snapshots[snap])
                if entry is None or entry.backing_file is None:
                    raise UnsafeImage('Snapshot %s of volume %s is stale (its overlay is not in the chain): its '
                                      'point in time is lost; cannot copy it.' % (snap, src_name))
                data = src.entry(entry.backing_file)
                # the size at the snapshot's point in time (what the copy
                # holds), not the overlay's: that grows when the volume is
                # extended after the snapshot
                src_size = data.virtual_size
                plan.add('copy snapshot %s of volume %s (%s) into %s as %s'
                         % (snap, src_name, data.file, book.base, fmt),
                         self._convert, data.path, data.format, book.path(part), fmt, provisioning)
            else:
                src_size = src.size
                self._plan_clone(plan, src_backend, src, book, part, fmt, provisioning)
        # an image of a size that is not whole sectors is padded with zeros:
        # qcow2 overlays of it would be unusable otherwise
        whole = _round_up(src_size, 512)
        final = whole if size is None else size
        if final < src_size:
            raise Conflict('Volume %s would be %s but its source is %s: a copy cannot be smaller than its source. '
                           'Give size >= %s or leave it out.' % (book.volume, naming.human_size(final),
                                                                 naming.human_size(src_size),
                                                                 naming.human_size(whole)))
        if final > src_size:
            plan.add('grow %s to %s' % (book.base, naming.human_size(final)),
                     self._resize, book.path(part), fmt, final, provisioning)
        return final

    def _plan_clone(self, plan, src_backend, src, book, part, fmt, provisioning):
        raw_single = src.format == 'raw' and fmt == 'raw' and src.active == src.book.base
        if raw_single and provisioning == 'thin' and src_backend.directory == self.directory \
                and fileio.fs_type(self.directory) in REFLINK_FS:
            plan.add('reflink copy of %s into %s (full copy where the filesystem refuses)'
                     % (src.active, book.base), self._reflink_or_copy, src.chain[0].path, book.path(part))
            return
        tmp = naming.temporary_snapshot(src.name, book.volume)
        if tmp in src.snapshots:
            raise Conflict('Volume %s already has a snapshot %s: a clone into %s is in progress or was interrupted. '
                           'Re-run after it ends.' % (src.name, tmp, book.volume))
        journal = {'op': 'clone', 'snapshot': tmp, 'had_info': src.info is not None}
        # undone after the copy's part file is gone: on ENOSPC that frees the
        # room the source's map needs to be put back
        plan.on_failure(src_backend._abandon_clone, src.book, tmp, journal['had_info'], last=True)
        plan.add('', src.book.write_journal, journal)
        plan.add('create temporary snapshot %s of %s' % (tmp, src.name),
                 src_backend._snapshot_create_files, src.book, tmp, src.active, src.active_format,
                 src.chain[0].virtual_size)
        plan.add('copy the point in time of %s (%s) into %s as %s' % (tmp, src.active, book.base, fmt),
                 self._convert, src.chain[0].path, src.active_format, book.path(part), fmt, provisioning)
        plan.add('delete temporary snapshot %s of %s' % (tmp, src.name), src_backend._drop_temporary_snapshot,
                 src.book, tmp, journal['had_info'])
        plan.add('', src.book.clear_journal)

    def _abandon_clone(self, book, tmp, had_info):
        """A clone that failed cleanly: the source goes back to exactly what
        it was (its map and files), and its journal goes."""
        journal = book.read_journal()
        if journal and journal.get('op') == 'clone':
            self._drop_temporary_snapshot(book, tmp, had_info)
            book.clear_journal()

    def _drop_temporary_info(self, book, had_info):
        """A clone of a volume that had no .info made one only for its
        temporary snapshot: remove it again, the source stays as it was."""
        if had_info is False and book.read_info(check_files=False) == {'active': book.base}:
            fileio.unlink(book.info_path)
            fileio.fsync_dir(self.directory)

    def _reflink_or_copy(self, src_path, dst_path):
        fileio.unlink(dst_path)
        if not fileio.reflink(src_path, dst_path):
            qemu_img.convert(src_path, 'raw', dst_path, 'raw')
        fileio.fsync_file(dst_path)

    def _convert(self, src_path, src_fmt, dst_path, fmt, provisioning):
        fileio.unlink(dst_path)
        qemu_img.convert(src_path, src_fmt, dst_path, fmt,
                         preallocation='metadata' if fmt == 'qcow2' else None,
                         sparse=not (fmt == 'raw' and provisioning == 'thick'))
        fileio.fsync_file(dst_path)     # qemu-img does not: a power cut could leave zeros

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

    def plan_absent(self, name, force=False):
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
            volume = self.load(name)
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
        plan.add('', book.write_journal, {'op': 'delete'})
        plan.add('delete %s and its bookkeeping' % ', '.join(e for e in entries if not e.startswith('.')),
                 self._delete_files, book)
        plan.add('', book.clear_journal)
        return plan, volume

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

    def _record_adopted(self, plan, volume):
        """A volume adopted from Cinder whose format was inferred (from its
        overlays) is recorded when a task changes it, so that it stays known
        once Cinder has merged those overlays away."""
        if plan and not volume.managed:
            plan.steps.insert(0, ('record volume %s as %s, %s (adopted, no record yet)'
                                  % (volume.name, volume.format, naming.human_size(volume.size)),
                                  volume.book.write_meta, (volume.format, volume.size, volume.provisioning), {}))
        return plan

    # ------------------------------------------------------------ snapshots
    def plan_snapshot_present(self, name, snap):
        plan = Plan('snapshot_present')
        volume = self.require(name)
        self.validate_snapshot_name(snap)
        if snap in volume.snapshots:
            return plan, volume
        overlay = naming.check_snapshot_file(name, snap)
        if os.path.lexists(self.path(overlay)):
            raise Conflict('Cannot create snapshot %s of volume %s: %s exists and is not one of its snapshots (a '
                           'left-over file?). Inspect it and remove it by hand, or choose another snapshot name.'
                           % (snap, name, overlay), path=self.path(overlay))
        journal = {'op': 'snapshot_create', 'snapshot': snap, 'file': overlay}
        plan.on_failure(self._undo, volume.book, journal)
        plan.add('', volume.book.write_journal, journal)
        plan.add('create overlay %s backed by %s (%s)' % (overlay, volume.active, volume.active_format),
                 self._snapshot_create_files, volume.book, snap, volume.active, volume.active_format,
                 volume.chain[0].virtual_size)
        plan.add('', volume.book.clear_journal)
        plan.after_info = dict(volume.info or {'active': volume.active}, active=overlay, **{snap: overlay})
        return self._record_adopted(plan, volume), volume

    def _snapshot_create_files(self, book, snap, active, active_fmt, size):
        overlay = naming.snapshot_file(book.volume, snap)
        path = book.path(overlay)
        fileio.unlink(path)
        qemu_img.create(path, 'qcow2', size, backing=active, backing_fmt=active_fmt)
        fileio.fsync_file(path)
        checkpoint('snapshot_create.overlay')
        self._own(path, book.path(active))     # a non-root qemu keeps its disk
        info = book.read_info() or {'active': book.base}
        info[snap] = overlay
        info['active'] = overlay
        book.write_info(info, like=book.path(active))

    def plan_snapshot_absent(self, name, snap):
        plan = Plan('snapshot_absent')
        volume = self.load(name)
        if volume is None or snap not in volume.snapshots:
            return plan, volume
        entry = self._snapshot_delete_entry(volume.book, volume.info, snap, volume)
        plan.add('', volume.book.write_journal, entry)
        mode = entry['mode']
        if mode == 'stale':
            plan.add('drop stale snapshot %s (%s is not in the chain%s)'
                     % (snap, entry['file'], ', not an overlay: the file is kept' if entry.get('keep_file') else ''))
        elif mode == 'active':
            plan.add('commit %s into %s' % (entry['file'], entry['base']))
            plan.add('make %s the active file' % entry['base'])
        else:
            plan.add('commit %s into %s' % (entry['file'], entry['base']))
            plan.add('re-point %s at %s' % (entry['upper'], entry['base']))
        what = ('the entry of %s' if entry.get('keep_file') else '%s and its entry') % entry['file']
        plan.add('remove %s in %s' % (what, os.path.basename(volume.book.info_path)),
                 self._finish_snapshot_delete, volume.book, entry)
        plan.add('', volume.book.clear_journal)
        if mode != 'stale':
            # a commit that failed before writing anything leaves no journal
            plan.on_failure(self._forget_if_untouched, volume.book, entry['base'],
                            _fingerprint(volume.book.path(entry['base'])))
        after = dict(volume.info)
        del after[snap]
        if mode == 'active':
            after['active'] = entry['base']
        plan.after_info = after
        return self._record_adopted(plan, volume), volume

    def _forget_if_untouched(self, book, filename, before):
        """The undo of a snapshot delete that failed cleanly: when the commit
        wrote nothing into the base (same size and times), nothing changed,
        so no journal is left to block later tasks; otherwise it stays and
        the next run completes the delete."""
        if _fingerprint(book.path(filename)) != before:
            return
        journal = book.read_journal()
        if journal and journal.get('op') == 'snapshot_delete' \
                and journal['snapshot'] in (book.read_info(check_files=False) or {}):
            book.clear_journal()

    def _snapshot_delete_entry(self, book, info, snap, volume=None):
        volume = volume or self.require(book.volume)
        filename = info[snap]
        entry = volume.entry(filename)
        result = {'op': 'snapshot_delete', 'snapshot': snap, 'file': filename}
        if entry is None or entry.backing_file is None:
            if filename == volume.active or filename == volume.base:
                raise UnsafeImage('Snapshot %s of volume %s maps to %s, which is the active or base file and has no '
                                  'backing file: the map is damaged. Fix %s by hand.'
                                  % (snap, book.volume, filename, book.info_path))
            result['mode'] = 'stale'
            # only a qcow2 file can be a left-over overlay; anything else is
            # kept, only the entry goes
            path = book.path(filename)
            try:
                overlay = qcow2.is_qcow2(path)
            except (OSError, StorageError):
                overlay = False
            if not overlay:
                result['keep_file'] = True
            return result
        base = volume.entry(entry.backing_file)
        result.update(base=base.file, base_format=base.format)
        if filename == volume.active:
            result['mode'] = 'active'
        else:
            result.update(mode='middle', upper=volume.above(filename).file)
        return result

    def _delete_snapshot_now(self, book, snap):
        info = book.read_info() or {}
        if snap in info:
            self._finish_snapshot_delete(book, self._snapshot_delete_entry(book, info, snap))

    def _finish_snapshot_delete(self, book, entry):
        """Perform (or, after a crash, complete) a snapshot delete. Every step
        is idempotent: commit -d leaves the overlay intact, so committing again
        writes the same data; the .info map changes before any file goes, and
        only after the committed data is on disk."""
        path = book.path(entry['file'])
        if entry['mode'] != 'stale' and os.path.lexists(path):
            info = book.read_info() or {}
            if entry['snapshot'] in info:
                qemu_img.commit(path, 'qcow2')
                fileio.fsync_file(book.path(entry['base']))
                checkpoint('snapshot_delete.committed')
                if entry['mode'] == 'middle':
                    qemu_img.rebase_unsafe(book.path(entry['upper']), entry['base'], entry['base_format'])
                    fileio.fsync_file(book.path(entry['upper']))
                    checkpoint('snapshot_delete.rebased')
        info = book.read_info(check_files=False) or {'active': book.base}
        if entry['snapshot'] in info:
            del info[entry['snapshot']]
            if entry['mode'] == 'active':
                info['active'] = entry['base']
            book.write_info(info)
            checkpoint('snapshot_delete.info')
        if not entry.get('keep_file') and entry['file'] not in info.values():
            fileio.unlink(path)
            fileio.fsync_dir(self.directory)

    def plan_revert(self, name, snap):
        plan = Plan('snapshot_revert')
        volume = self.require(name)
        if snap not in volume.snapshots:
            raise NotFound('Snapshot %s of volume %s does not exist: nothing to revert to. Choose its latest snapshot '
                           '(it has: %s; see blockyard.storage.volume_info).'
                           % (snap, name, ', '.join(volume.ordered_snapshots()) or 'none'))
        latest = [s for s, f in volume.snapshots.items() if f == volume.active]
        if volume.snapshots[snap] != volume.active:
            raise Conflict('Snapshot %s is not the latest snapshot of volume %s (%s is): only the latest can be '
                           'reverted to. Delete the snapshots taken after it first.'
                           % (snap, name, ', '.join(latest) or 'none'))
        top = volume.chain[0]
        if not self._has_new_data(top.path):
            return plan, volume
        tmp = '.%s.revert' % top.file
        journal = {'op': 'revert', 'tmp': tmp}
        plan.on_failure(self._undo, volume.book, journal)
        plan.add('', volume.book.write_journal, journal)
        plan.add('discard the data written since snapshot %s (new empty %s on %s)'
                 % (snap, top.file, top.backing_file),
                 self._revert_files, volume, tmp)
        plan.add('', volume.book.clear_journal)
        return self._record_adopted(plan, volume), volume

    @staticmethod
    def _has_new_data(path):
        """True when the overlay holds data of its own (written or zeroed
        clusters); the area a later extension added past the end of its
        backing file is not data (present: false)."""
        return any(item.get('depth') == 0 and item.get('present')
                   for item in qemu_img.map_allocated(path, 'qcow2'))

    def _revert_files(self, volume, tmp):
        top = volume.chain[0]
        tmp_path = self.path(tmp)
        fileio.unlink(tmp_path)
        qemu_img.create(tmp_path, 'qcow2', top.virtual_size, backing=top.backing_file,
                        backing_fmt=top.backing_format)
        self._own(tmp_path, top.path)           # the new overlay keeps the replaced one's owner and mode
        fileio.fsync_file(tmp_path)
        checkpoint('revert.created')
        fileio.rename(tmp_path, top.path)


def _round_up(value, unit):
    return (value + unit - 1) // unit * unit


def _fingerprint(path):
    """What changes when a file is written: size, mtime and ctime."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def check_source_image(path, fmt=None):
    """Check an image to copy in; returns its qcow2 header, or None for raw.
    fmt None: qcow2 when the file carries the qcow2 magic, raw otherwise.
    A qcow2 source may have no backing file or external data file at all."""
    if not os.path.isabs(path):
        raise InvalidInput('source_image %r must be an absolute path.' % path)
    if not os.path.isfile(path):
        raise InvalidInput('source_image %s does not exist or is not a regular file.' % path, path=path)
    if fmt is None:
        fmt = 'qcow2' if qcow2.is_qcow2(path) else 'raw'
    if fmt == 'raw':
        return None
    return qcow2.check_image(path, 'qcow2', allow_backing=None)
