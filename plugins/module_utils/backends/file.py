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

from ansible_collections.blockyard.storage.plugins.module_utils import fileio, naming, qcow2, qemu_img
from ansible_collections.blockyard.storage.plugins.module_utils.backends.base import Backend
from ansible_collections.blockyard.storage.plugins.module_utils.errors import (
    Conflict, InvalidInput, NotFound, StorageError, UnsafeImage)
from ansible_collections.blockyard.storage.plugins.module_utils.plan import Plan
from ansible_collections.blockyard.storage.plugins.module_utils.runner import checkpoint
from ansible_collections.blockyard.storage.plugins.module_utils.snapinfo import Bookkeeping

MAX_CHAIN_DEPTH = 256
REFLINK_FS = frozenset(['xfs', 'btrfs'])


class FileVolume:
    """What is on disk for one volume, checked."""

    def __init__(self, book, fmt, size, provisioning, info, chain, managed):
        self.book = book
        self.name = book.volume
        self.format = fmt                  # format of the base file
        self.size = size                   # recorded size in bytes
        self.provisioning = provisioning
        self.info = info                   # the .info map or None
        self.chain = chain                 # qcow2.ChainEntry list, active first
        self.managed = managed             # False: adopted, no .meta yet
        self._by_file = dict((item.file, item) for item in chain)
        self._by_backing = dict((item.backing_file, item) for item in chain if item.backing_file)

    @property
    def active(self):
        return self.chain[0].file

    @property
    def active_format(self):
        return self.chain[0].format

    @property
    def snapshots(self):
        return Bookkeeping.snapshots(self.info)

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

    def __init__(self, directory, owner=None, group=None, mode=0o660, provider_location=None):
        if not os.path.isabs(directory):
            raise InvalidInput('The volume directory %r must be an absolute path.' % directory)
        if not os.path.isdir(directory):
            raise InvalidInput('The volume directory %s does not exist or is not a directory: create it (or mount '
                               'the share) first.' % directory, path=directory)
        self.directory = os.path.realpath(directory)
        self.owner = owner
        self.group = group
        self.mode = mode
        self.provider_location = provider_location or self.directory

    # ------------------------------------------------------------------ reading
    def book(self, name):
        return Bookkeeping(self.directory, name)

    def path(self, filename):
        return os.path.join(self.directory, filename)

    def exists(self, name):
        book = self.book(name)
        return any(os.path.lexists(p) for p in (book.path(book.base), book.meta_path, book.info_path))

    def load(self, name, fmt=None):
        """Read and check volume `name`; None when it does not exist.

        fmt states the format of a volume adopted from a Cinder share (no
        .meta); a recorded format is never re-probed."""
        book = self.book(name)
        meta = book.read_meta()
        info = book.read_info(check_files=False)   # files checked below, along the chain walk
        base_path = book.path(book.base)
        if meta is None and info is None and not os.path.lexists(base_path):
            return None
        if os.path.islink(base_path) or (os.path.exists(base_path) and not os.path.isfile(base_path)):
            raise UnsafeImage('%s is a link or not a regular file: refusing to use it as volume %s.'
                              % (base_path, name), path=base_path)
        if not os.path.exists(base_path):
            raise StorageError('Volume %s has bookkeeping in %s but its file %s is missing: restore the file or '
                               'remove the volume with state=absent.' % (name, self.directory, book.base),
                               path=base_path)
        managed = meta is not None
        base_fmt = meta['format'] if managed else (fmt or 'raw')
        active = book.active(info)
        top_fmt = 'qcow2' if active != book.base else base_fmt
        limit = meta['size_bytes'] if managed else None
        journal = book.read_journal()
        if journal and journal.get('size'):
            limit = max(limit or 0, journal['size'])
        if info is not None:
            book.check_file('active', active)
        try:
            if base_fmt == 'raw':
                qcow2.check_image(base_path, 'raw')
            chain = qcow2.walk_chain(book.path(active), book.pattern, expected_top_format=top_fmt,
                                     max_depth=MAX_CHAIN_DEPTH, max_virtual_size=limit)
        except UnsafeImage as exc:
            details = dict(exc.details, volume=name)
            raise UnsafeImage('Volume %s failed the image-safety checks: %s Nothing was touched. Its files were '
                              'changed outside this collection (by a guest or a tool); inspect them with '
                              '"qemu-img info -U" and restore them, or delete the volume.'
                              % (name, exc.msg), **details)
        walked = set(item.file for item in chain)
        for key, value in (info or {}).items():
            if value not in walked:
                book.check_file(key, value)
        bottom = chain[-1]
        if bottom.file != book.base or bottom.format != base_fmt:
            raise UnsafeImage('The chain of volume %s ends at %s (%s), not at its base file %s (%s): refusing to '
                              'touch it. Inspect the files and the .info map.'
                              % (name, bottom.file, bottom.format, book.base, base_fmt), path=bottom.path)
        if managed:
            size = meta['size_bytes']
            provisioning = meta.get('provisioning', 'thin')
        else:
            size = chain[0].virtual_size
            provisioning = 'thin'
        return FileVolume(book, base_fmt, size, provisioning, info, chain, managed)

    def require(self, name, fmt=None):
        volume = self.load(name, fmt)
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
        snapshots = []
        for snap, filename in sorted(volume.snapshots.items()):
            entry = volume.entry(filename)
            snapshots.append({'name': snap, 'overlay': filename,
                              'data_file': entry.backing_file if entry else None,
                              'stale': entry is None})
        return {
            'name': volume.name,
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
        }

    def list_names(self):
        entries = os.listdir(self.directory)
        names = set()
        for entry in entries:
            if entry.startswith('volume-') and (entry.endswith('.meta') or entry.endswith('.info')):
                names.add(entry[len('volume-'):entry.rindex('.')])
        # a file without a dot after "volume-" is a base file (overlays are
        # volume-<name>.<snapshot>): those of known volumes are claimed
        claimed = set(naming.volume_file(name) for name in names)
        for entry in entries:
            if entry.startswith('volume-') and entry not in claimed and '.' not in entry[len('volume-'):] \
                    and os.path.isfile(self.path(entry)):
                names.add(entry[len('volume-'):])   # a Cinder volume not adopted yet
        return sorted(n for n in names if naming.NAME_RE.match(n))

    def capacity(self, known=None):
        """Capacity of the location. known: {name: describe() result} of
        volumes already read, so that their files are not read again."""
        st = os.statvfs(self.directory)
        total = st.f_frsize * st.f_blocks
        free = st.f_frsize * st.f_bavail
        allocated = provisioned = 0
        known = known or {}
        for name in self.list_names():
            desc = known.get(name)
            if desc and 'error' not in desc:
                allocated += desc['allocated_bytes']
                provisioned += desc['size_bytes']
                continue
            book = self.book(name)
            meta = _json_or_empty(book.meta_path, 'Volume record')
            info = _json_or_empty(book.info_path, 'Snapshot map')
            for filename in set([book.base]) | self._named_files(book, info.values()):
                try:
                    allocated += os.lstat(self.path(filename)).st_blocks * 512
                except OSError:
                    pass
            if meta.get('size_bytes'):
                provisioned += meta['size_bytes']
            else:
                try:
                    provisioned += os.lstat(self.path(book.base)).st_size
                except OSError:
                    pass
        return {'location': self.provider_location, 'directory': self.directory,
                'total_bytes': total, 'free_bytes': free, 'used_bytes': total - st.f_frsize * st.f_bfree,
                'allocated_bytes': allocated, 'provisioned_bytes': provisioned,
                'apparent_over_subscription': round(float(provisioned) / total, 4) if total else None}

    # ------------------------------------------------------------ recovery
    def recover(self, name, check_mode=False):
        """Complete or undo an operation on `name` interrupted by a crash.
        Returns the actions taken (or that would be taken in check mode)."""
        book = self.book(name)
        journal = book.read_journal()
        if not journal:
            return []
        op = journal.get('op')
        text = 'complete interrupted %s of volume %s' % (op, name)
        if check_mode:
            return [text]
        handler = getattr(self, '_recover_%s' % op, None)
        if handler is None:
            raise StorageError('Volume %s has a journal %s for an unknown operation %r: inspect it and remove it by '
                               'hand.' % (name, book.journal_path, op), path=book.journal_path)
        handler(book, journal)
        book.clear_journal()
        return [text]

    def _recover_delete(self, book, journal):
        self._delete_files(book)

    def _recover_create(self, book, journal):
        fileio.unlink(self.path(journal['part']))
        if journal.get('made_base'):
            # the base file was renamed into place but its record was not
            # written: it is ours and incomplete only if no .meta exists
            if not os.path.exists(book.meta_path):
                fileio.unlink(book.path(book.base))

    def _recover_extend(self, book, journal):
        meta = book.read_meta()
        active = book.active()
        fmt = 'qcow2' if active != book.base else (meta or {}).get('format', 'raw')
        self._resize(book.path(active), fmt, journal['size'], (meta or {}).get('provisioning', 'thin'))
        if meta:
            book.write_meta(meta['format'], journal['size'], meta.get('provisioning', 'thin'))

    def _recover_snapshot_create(self, book, journal):
        info = book.read_info() or {}
        if journal['snapshot'] not in info:
            fileio.unlink(book.path(journal['file']))

    def _recover_snapshot_delete(self, book, journal):
        self._finish_snapshot_delete(book, journal)

    def _recover_revert(self, book, journal):
        fileio.unlink(book.path(journal['tmp']))

    def _recover_clone(self, book, journal):
        info = book.read_info() or {}
        snap = journal['snapshot']
        if snap in info:
            self._finish_snapshot_delete(book, self._snapshot_delete_entry(book, info, snap))
        else:
            # killed after the temporary overlay was made but before the map
            # named it, or after the map dropped it but before its removal
            fileio.unlink(book.path(naming.snapshot_file(book.volume, snap)))
        self._drop_temporary_info(book, journal.get('had_info'))
        dest = FileBackend(journal['dest_dir'])
        dest_book = dest.book(journal['dest'])
        dest._recover_create(dest_book, {'part': journal['part'], 'made_base': True})

    # ------------------------------------------------------------ volumes
    def plan_present(self, name, fmt=None, size=None, provisioning=None, source=None, adopt_format=None):
        """Plan to make volume `name` exist with this format and at least
        this size. source: None, ('image', path, fmt), ('volume', FileBackend,
        name) or ('snapshot', FileBackend, volume, snapshot)."""
        plan = Plan('volume_present')
        volume = self.load(name, adopt_format or fmt)
        if volume is None:
            return self._plan_create(plan, name, fmt or 'raw', size, provisioning or 'thin', source), None
        fmt = fmt or volume.format
        if provisioning and volume.managed and provisioning != volume.provisioning:
            plan.warnings.append('Volume %s is recorded as %s; provisioning=%s is ignored for an existing volume '
                                 '(no conversion in place).' % (name, volume.provisioning, provisioning))
        provisioning = provisioning or volume.provisioning
        if volume.format != fmt:
            raise Conflict('Volume %s exists as %s, not %s: a volume\'s format cannot be changed in place. Use '
                           'format=%s, or create a new volume from it (source_volume) in the other format.'
                           % (name, volume.format, fmt, volume.format))
        if not volume.managed:
            plan.add('record volume %s as %s (adopted, no record yet)' % (name, fmt),
                     volume.book.write_meta, fmt, volume.size, provisioning)
        if size is not None and size < volume.size:
            raise Conflict('Volume %s is %d bytes (%s); refusing to shrink it to %d bytes (%s): shrinking loses '
                           'data. Give size >= %s.' % (name, volume.size, naming.human_size(volume.size), size,
                                                       naming.human_size(size), naming.human_size(volume.size)))
        if size is not None and size > volume.size:
            text = 'extend volume %s from %s to %s (%s)' % (
                name, naming.human_size(volume.size), naming.human_size(size), volume.active)
            plan.add(text, self._extend, volume, size)
        self._plan_ownership(plan, volume)
        return plan, volume

    def _plan_ownership(self, plan, volume):
        for filename in volume.files():
            path = self.path(filename)
            if self._ownership_differs(path):
                plan.add('set owner/group/mode of %s' % filename, fileio.apply_ownership, path, self.owner,
                         self.group, self.mode)

    def _ownership_differs(self, path):
        import grp
        import pwd
        st = os.stat(path)
        if self.mode is not None and (st.st_mode & 0o7777) != self.mode:
            return True
        try:
            if self.owner is not None:
                uid = int(self.owner) if str(self.owner).isdigit() else pwd.getpwnam(self.owner).pw_uid
                if uid != st.st_uid:
                    return True
            if self.group is not None:
                gid = int(self.group) if str(self.group).isdigit() else grp.getgrnam(self.group).gr_gid
                if gid != st.st_gid:
                    return True
        except KeyError as exc:
            raise InvalidInput('Unknown user or group %s for %s: create it or fix the owner/group option.'
                               % (exc, path))
        return False

    def _plan_create(self, plan, name, fmt, size, provisioning, source):
        book = self.book(name)
        part = '.%s.part' % book.base
        if source is None and size is None:
            raise InvalidInput('Volume %s does not exist and no size was given: give size to create it.' % name)
        self._check_name_free(name)
        journal = {'op': 'create', 'part': part}
        plan.on_failure(self._rollback_create, book)
        plan.add('', book.write_journal, journal)
        if source is None:
            how = {'raw': {'thin': 'sparse raw file', 'thick': 'fully allocated raw file'},
                   'qcow2': {'thin': 'qcow2 (preallocation=metadata)', 'thick': 'qcow2 (preallocation=metadata)'}}
            plan.add('create %s %s of %s' % (how[fmt][provisioning], book.base, naming.human_size(size)),
                     self._create_blank, book.path(part), fmt, size, provisioning)
            final_size = size
        else:
            final_size = self._plan_copy(plan, book, part, fmt, size, provisioning, source)
        plan.add('set owner/group/mode of %s' % book.base, fileio.apply_ownership, book.path(part), self.owner,
                 self.group, self.mode)
        plan.add('move %s into place' % book.base, self._place, book, part, journal)
        plan.add('record volume %s (%s, %s, %s)' % (name, fmt, provisioning, naming.human_size(final_size)),
                 book.write_meta, fmt, final_size, provisioning)
        plan.size = final_size      # what check mode reports (a copy's size comes from its source)
        plan.add('', book.clear_journal)
        return plan

    def _rollback_create(self, book):
        """A create that failed cleanly (ENOSPC, a qemu-img error): remove
        what it made, journal included, so that nothing is left behind."""
        journal = book.read_journal()
        if journal and journal.get('op') == 'create':
            self._recover_create(book, journal)
            book.clear_journal()

    def _check_name_free(self, name):
        """A new volume's file must not be another volume's snapshot overlay
        (volume a.b vs snapshot b of volume a)."""
        base = naming.volume_file(name)
        parts = name.split('.')
        for cut in range(1, len(parts)):
            owner = '.'.join(parts[:cut])
            info = fileio.read_json(self.book(owner).info_path, 'Snapshot map') or {}
            if base in info.values():
                raise Conflict('Cannot create volume %s: %s is a snapshot file of volume %s. Choose another name.'
                               % (name, base, owner))
        if os.path.lexists(self.path('.%s.part' % base)) and not os.path.exists(self.book(name).journal_path):
            fileio.unlink(self.path('.%s.part' % base))

    def _place(self, book, part, journal):
        base_path = book.path(book.base)
        if os.path.lexists(base_path):
            raise Conflict('Cannot create volume %s: %s appeared while it was being made. Nothing was replaced.'
                           % (book.volume, base_path))
        journal = dict(journal, made_base=True)
        book.write_journal(journal)
        os.rename(book.path(part), base_path)
        fileio.fsync_dir(self.directory)

    def _create_blank(self, path, fmt, size, provisioning):
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
            src_size = header.size if header else os.path.getsize(src_path)
            src_fmt = 'qcow2' if header else 'raw'
            desc = 'image %s' % src_path
            plan.add('copy %s (%s) into %s as %s' % (desc, src_fmt, book.base, fmt),
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
        final = src_size if size is None else size
        if final < src_size:
            raise Conflict('Volume %s would be %s but its source is %s: a copy cannot be smaller than its source. '
                           'Give size >= %s or leave it out.' % (book.volume, naming.human_size(final),
                                                                 naming.human_size(src_size),
                                                                 naming.human_size(src_size)))
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
        tmp = 'tmp-snap-%s' % book.volume
        naming.check_snapshot_file(src.name, tmp)
        if tmp in src.snapshots:
            raise Conflict('Volume %s already has a snapshot %s: a clone into %s is in progress or was interrupted. '
                           'Re-run after it ends.' % (src.name, tmp, book.volume))
        journal = {'op': 'clone', 'snapshot': tmp, 'dest': book.volume, 'dest_dir': self.directory, 'part': part,
                   'had_info': src.info is not None}
        plan.on_failure(src_backend.recover, src.name)
        plan.add('', src.book.write_journal, journal)
        plan.add('create temporary snapshot %s of %s' % (tmp, src.name),
                 src_backend._snapshot_create_files, src.book, tmp, src.active, src.active_format,
                 src.chain[0].virtual_size)
        plan.add('copy the point in time of %s (%s) into %s as %s' % (tmp, src.active, book.base, fmt),
                 self._convert, src.chain[0].path, src.active_format, book.path(part), fmt, provisioning)
        plan.add('delete temporary snapshot %s of %s' % (tmp, src.name), src_backend._delete_snapshot_now,
                 src.book, tmp)
        plan.add('', src_backend._drop_temporary_info, src.book, journal['had_info'])
        plan.add('', src.book.clear_journal)

    def _drop_temporary_info(self, book, had_info):
        """A clone of a volume that had no .info made one only for its
        temporary snapshot: remove it again, the source stays as it was."""
        if had_info is False and fileio.read_json(book.info_path, 'Snapshot map') == {'active': book.base}:
            fileio.unlink(book.info_path)
            fileio.fsync_dir(self.directory)

    def _reflink_or_copy(self, src_path, dst_path):
        if not fileio.reflink(src_path, dst_path):
            qemu_img.convert(src_path, 'raw', dst_path, 'raw')

    def _convert(self, src_path, src_fmt, dst_path, fmt, provisioning):
        fileio.unlink(dst_path)
        qemu_img.convert(src_path, src_fmt, dst_path, fmt,
                         preallocation='metadata' if fmt == 'qcow2' else None,
                         sparse=not (fmt == 'raw' and provisioning == 'thick'))

    def _resize(self, path, fmt, size, provisioning):
        if fmt == 'raw':
            current = os.path.getsize(path)
            if current >= size:
                return
            if provisioning == 'thick':
                fd = os.open(path, os.O_WRONLY)
                try:
                    os.ftruncate(fd, size)
                    fileio.allocate_zeros(path, fd, current, size - current)
                    os.fsync(fd)
                except OSError as exc:
                    raise StorageError('Cannot extend %s to %d bytes: %s. Free space, then re-run: the task '
                                       'completes the extension.' % (path, size, exc.strerror), path=path)
                finally:
                    os.close(fd)
            else:
                os.truncate(path, size)
        else:
            header = qcow2.read_header(path)
            if header.size < size:
                qemu_img.resize(path, 'qcow2', size)
        actual = os.path.getsize(path) if fmt == 'raw' else qcow2.read_header(path).size
        if actual != size:
            raise StorageError('Resized %s to %d bytes but it reports %d: check the filesystem and re-run.'
                               % (path, size, actual), path=path)

    def _extend(self, volume, size):
        book = volume.book
        book.write_journal({'op': 'extend', 'size': size})
        checkpoint('extend.journaled')
        try:
            self._resize(volume.chain[0].path, volume.active_format, size, volume.provisioning)
        except StorageError:
            self._undo_extend(volume)
            raise
        checkpoint('extend.resized')
        book.write_meta(volume.format, size, volume.provisioning)
        book.clear_journal()

    def _undo_extend(self, volume):
        """An extension that failed cleanly (ENOSPC...): put the active file
        back to its size and drop the journal, so that the volume stays usable
        (and deletable) instead of every later run retrying the extension.
        Where the size cannot be restored the journal stays (roll forward)."""
        top = volume.chain[0]
        try:
            if top.format == 'raw':
                if os.path.getsize(top.path) > top.virtual_size:
                    os.truncate(top.path, top.virtual_size)
            elif qcow2.read_header(top.path).size != top.virtual_size:
                return
        except (OSError, StorageError):
            return
        volume.book.clear_journal()

    def plan_absent(self, name, force=False):
        plan = Plan('volume_absent')
        book = self.book(name)
        if not self.exists(name):
            return plan, None
        try:
            volume = self.load(name)
        except StorageError:
            volume = None
        snaps = volume.snapshots if volume else Bookkeeping.snapshots(fileio.read_json(book.info_path, 'map'))
        if snaps and not force:
            raise Conflict('Volume %s has snapshots (%s): deleting it deletes them too. Delete the snapshots first, '
                           'or set force=true.' % (name, ', '.join(sorted(snaps))))
        plan.add('', book.write_journal, {'op': 'delete'})
        files = volume.files() if volume else sorted(set([book.base]) | set(snaps.values()))
        plan.add('delete %s and its bookkeeping' % ', '.join(files), self._delete_files, book)
        plan.add('', book.clear_journal)
        return plan, volume

    def _delete_files(self, book):
        """Remove the files of a volume. The .info goes first, once the
        journal lists the files it names, so that it never names a removed
        file and a re-run still knows what to remove. Only names of this
        volume's chain are removed, never another volume's file."""
        journal = book.read_journal() or {}
        info = fileio.read_json(book.info_path, 'Snapshot map') or {}
        files = self._named_files(book, list(info.values()) + list(journal.get('files') or []))
        if os.path.exists(book.info_path):
            book.write_journal(dict(journal, op='delete', files=sorted(files)))
            fileio.unlink(book.info_path)
            fileio.fsync_dir(self.directory)
            checkpoint('delete.info_removed')
        for filename in sorted(files) + [book.base, '.%s.part' % book.base]:
            fileio.unlink(book.path(filename))
            checkpoint('delete.file')
        fileio.unlink(book.meta_path)
        fileio.fsync_dir(self.directory)

    def _named_files(self, book, names):
        """Of the names a map (or journal) gives, those that are files of this
        volume: strings matching its chain naming, not another volume's file."""
        return set(f for f in names if isinstance(f, str) and book.pattern.match(f)
                   and not self._other_volume_file(book, f))

    def _other_volume_file(self, book, filename):
        """True for the file of another volume that matches this volume's
        chain naming (volume <name>.<x> lives in volume-<name>.<x>)."""
        return filename != book.base and any(os.path.lexists(self.path('%s.%s' % (filename, kind)))
                                             for kind in ('meta', 'info'))

    # ------------------------------------------------------------ snapshots
    def plan_snapshot_present(self, name, snap):
        plan = Plan('snapshot_present')
        volume = self.require(name)
        naming.validate_snapshot_name(snap)
        if snap in volume.snapshots:
            return plan, volume
        overlay = naming.check_snapshot_file(name, snap)
        if os.path.lexists(self.path(overlay)):
            raise Conflict('Cannot create snapshot %s of volume %s: %s exists and is not one of its snapshots '
                           '(is there a volume named %s.%s?). Choose another snapshot name.'
                           % (snap, name, overlay, name, snap))
        plan.add('', volume.book.write_journal,
                 {'op': 'snapshot_create', 'snapshot': snap, 'file': overlay})
        plan.add('create overlay %s backed by %s (%s)' % (overlay, volume.active, volume.active_format),
                 self._snapshot_create_files, volume.book, snap, volume.active, volume.active_format,
                 volume.chain[0].virtual_size)
        plan.add('', volume.book.clear_journal)
        plan.after_info = dict(volume.info or {'active': volume.active}, active=overlay, **{snap: overlay})
        return plan, volume

    def _snapshot_create_files(self, book, snap, active, active_fmt, size):
        overlay = naming.snapshot_file(book.volume, snap)
        path = book.path(overlay)
        fileio.unlink(path)
        qemu_img.create(path, 'qcow2', size, backing=active, backing_fmt=active_fmt)
        checkpoint('snapshot_create.overlay')
        fileio.apply_ownership(path, self.owner, self.group, self.mode)
        info = book.read_info() or {'active': book.base}
        info[snap] = overlay
        info['active'] = overlay
        book.write_info(info)

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
        after = dict(volume.info)
        del after[snap]
        if mode == 'active':
            after['active'] = entry['base']
        plan.after_info = after
        return plan, volume

    def _snapshot_delete_entry(self, book, info, snap, volume=None):
        volume = volume or self.load(book.volume)
        filename = info[snap]
        entry = volume.entry(filename)
        result = {'op': 'snapshot_delete', 'snapshot': snap, 'file': filename}
        if entry is None or entry.backing_file is None:
            if filename == volume.active or filename == book.base:
                raise UnsafeImage('Snapshot %s of volume %s maps to %s, which is the active or base file and has no '
                                  'backing file: the map is damaged. Fix %s by hand.'
                                  % (snap, book.volume, filename, book.info_path))
            result['mode'] = 'stale'
            # only a qcow2 file can be a left-over overlay; anything else (a
            # raw file, another volume's file) is kept, only the entry goes
            path = book.path(filename)
            if not qcow2.is_qcow2(path) or self._other_volume_file(book, filename):
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
        writes the same data; the .info map changes before any file goes."""
        path = book.path(entry['file'])
        if entry['mode'] != 'stale' and os.path.exists(path):
            info = book.read_info() or {}
            if entry['snapshot'] in info:
                qemu_img.commit(path, 'qcow2')
                checkpoint('snapshot_delete.committed')
                if entry['mode'] == 'middle':
                    qemu_img.rebase_unsafe(book.path(entry['upper']), entry['base'], entry['base_format'])
                    checkpoint('snapshot_delete.rebased')
        info = book.read_info() or {'active': book.base}
        if entry['snapshot'] in info:
            del info[entry['snapshot']]
            if entry['mode'] == 'active':
                info['active'] = entry['base']
            book.write_info(info)
            checkpoint('snapshot_delete.info')
        if not entry.get('keep_file'):
            fileio.unlink(path)
            fileio.fsync_dir(self.directory)

    def plan_revert(self, name, snap):
        plan = Plan('snapshot_revert')
        volume = self.require(name)
        if snap not in volume.snapshots:
            raise NotFound('Snapshot %s of volume %s does not exist: nothing to revert to.' % (snap, name))
        latest = [s for s, f in volume.snapshots.items() if f == volume.active]
        if volume.snapshots[snap] != volume.active:
            raise Conflict('Snapshot %s is not the latest snapshot of volume %s (%s is): only the latest can be '
                           'reverted to. Delete the snapshots taken after it first.'
                           % (snap, name, ', '.join(latest) or 'none'))
        top = volume.chain[0]
        if not self._has_new_data(top.path):
            return plan, volume
        tmp = '.%s.revert' % top.file
        plan.add('', volume.book.write_journal, {'op': 'revert', 'tmp': tmp})
        plan.add('discard the data written since snapshot %s (new empty %s on %s)'
                 % (snap, top.file, top.backing_file),
                 self._revert_files, volume, tmp)
        plan.add('', volume.book.clear_journal)
        return plan, volume

    @staticmethod
    def _has_new_data(path):
        return any(item.get('depth') == 0 for item in qemu_img.map_allocated(path, 'qcow2'))

    def _revert_files(self, volume, tmp):
        top = volume.chain[0]
        tmp_path = self.path(tmp)
        fileio.unlink(tmp_path)
        qemu_img.create(tmp_path, 'qcow2', top.virtual_size, backing=top.backing_file,
                        backing_fmt=top.backing_format)
        fileio.apply_ownership(tmp_path, self.owner, self.group, self.mode)
        checkpoint('revert.created')
        os.rename(tmp_path, top.path)
        fileio.fsync_dir(self.directory)


def _json_or_empty(path, what):
    """A sidecar for listings and capacity: a damaged one counts as empty
    there (the operations on that volume report it), it must not break the
    listing of every other volume."""
    try:
        return fileio.read_json(path, what) or {}
    except StorageError:
        return {}


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
