# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bookkeeping beside a file volume.

- ``volume-<name>.info``: Cinder's snapshot map, exactly its format
  (``{"active": file, "<snapshot>": file}``, indent=1, sorted keys). A missing
  file means no snapshots and the base file is active.
- ``volume-<name>.meta``: our sidecar recording format, size and provisioning,
  so that a format is never probed from data a guest controls.
- ``volume-<name>.journal``: the intent of a multi-step operation in flight,
  so that an interrupted one is completed (or undone) by the next run.
All are written atomically."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

from ansible_collections.blockyard.storage.plugins.module_utils import fileio, naming
from ansible_collections.blockyard.storage.plugins.module_utils.backends.file import layout
from ansible_collections.blockyard.storage.plugins.module_utils.errors import StorageError, UnsafeImage

META_VERSION = 1


class InvalidJournal(StorageError):
    """A journal this collection did not write (or that was damaged)."""


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


class Bookkeeping:
    """The sidecar files of one volume in one directory."""

    def __init__(self, directory, volume):
        self.directory = directory
        self.volume = volume
        self.base = layout.volume_file(volume)
        self.info_path = os.path.join(directory, layout.sidecar_file(volume, 'info'))
        self.meta_path = os.path.join(directory, layout.sidecar_file(volume, 'meta'))
        self.journal_path = os.path.join(directory, layout.sidecar_file(volume, 'journal'))
        self.part = '.%s.part' % self.base
        self.pattern = layout.chain_pattern(volume)

    def path(self, filename):
        return os.path.join(self.directory, filename)

    def owns(self, filename):
        """True for a bare name of this volume's chain (base or overlay)."""
        return isinstance(filename, str) and bool(self.pattern.match(filename))

    # .info -------------------------------------------------------------
    def read_info(self, check_files=True):
        """The validated snapshot map, or None when there is no .info.
        check_files=False leaves the existence checks of the files it names
        to the caller (load() checks them along the chain walk)."""
        data = fileio.read_json(self.info_path, 'Snapshot map')
        if data is None:
            return None
        if 'active' not in data:
            raise UnsafeImage('Snapshot map %s has no "active" entry: it is damaged. Inspect the chain (qemu-img '
                              'info -U --backing-chain on the newest overlay) and fix the map by hand before touching '
                              'volume %s.' % (self.info_path, self.volume), path=self.info_path)
        for key, value in data.items():
            if key != 'active' and (not naming.NAME_RE.fullmatch(key) or key in layout.RESERVED_SNAPSHOT_NAMES):
                raise UnsafeImage('Snapshot map %s has the entry %r, which is not a snapshot name: it is damaged. '
                                  'Fix the map by hand before touching volume %s.'
                                  % (self.info_path, key, self.volume), path=self.info_path)
            if not self.owns(value):
                raise UnsafeImage('Snapshot map %s maps %r to %r, which is not a file of volume %s (expected a bare '
                                  'name like %s.<snapshot>): refusing to touch it. Fix the map by hand.'
                                  % (self.info_path, key, value, self.volume, self.base), path=self.info_path)
            if check_files:
                self.check_file(key, value)
        return data

    def check_file(self, key, value):
        """A file named by the map must be a regular file (not a link)."""
        try:
            is_file = fileio.lstat_regular(self.path(value)) is not None
        except fileio.UnsafeFile as exc:
            raise UnsafeImage('Snapshot map %s maps %r to %s: %s' % (self.info_path, key, value, exc.msg),
                              path=self.info_path)
        if not is_file:
            raise UnsafeImage('Snapshot map %s maps %r to %s, which does not exist: the chain is incomplete. Restore '
                              'the file or fix the map; nothing was touched.' % (self.info_path, key, value),
                              path=self.info_path)

    def write_info(self, data, like=None):
        # byte for byte what Cinder's json.dump(indent=1, sort_keys=True)
        # writes: no trailing newline; a rewrite keeps the file's owner,
        # group and mode (cinder-volume writes it as its own user)
        fileio.atomic_write(self.info_path, fileio.dump_json(data), like=like or self.path(data['active']))

    def active(self, info=None):
        info = self.read_info() if info is None else info
        return info['active'] if info else self.base

    @staticmethod
    def snapshots(info):
        return dict((k, v) for k, v in (info or {}).items() if k != 'active')

    # .meta -------------------------------------------------------------
    def read_meta(self):
        meta = fileio.read_json(self.meta_path, 'Volume record')
        if meta is None:
            return None
        problem = None
        if meta.get('format') not in ('raw', 'qcow2'):
            problem = 'format %r is not raw or qcow2' % (meta.get('format'),)
        elif not _is_int(meta.get('size_bytes')) or not 0 < meta['size_bytes'] <= naming.MAX_SIZE \
                or meta['size_bytes'] % 512:
            problem = 'size_bytes %r is not a positive whole number of 512-byte sectors' % (meta.get('size_bytes'),)
        elif meta.get('provisioning', 'thin') not in ('thin', 'thick'):
            problem = 'provisioning %r is not thin or thick' % (meta.get('provisioning'),)
        if problem:
            raise UnsafeImage('Volume record %s is damaged: %s. Fix it by hand (or delete it: the volume is then '
                              'adopted again with format=raw|qcow2 and its current size).' % (self.meta_path, problem),
                              path=self.meta_path)
        meta.setdefault('provisioning', 'thin')
        return meta

    def write_meta(self, fmt, size_bytes, provisioning, like=None):
        fileio.write_json(self.meta_path, {'format': fmt, 'size_bytes': int(size_bytes),
                                           'provisioning': provisioning, 'version': META_VERSION},
                          like=like or self.path(self.base))

    # .journal ----------------------------------------------------------
    def read_journal(self):
        """The validated journal, or None. InvalidJournal when it is damaged
        or names anything but this volume's own files."""
        try:
            journal = fileio.read_json(self.journal_path, 'Operation journal')
        except StorageError as exc:
            raise InvalidJournal(self._refused(exc.msg), path=self.journal_path)
        if journal is None:
            return None
        problem = self._journal_problem(journal)
        if problem:
            raise InvalidJournal(self._refused('it %s' % problem), path=self.journal_path)
        return journal

    def _refused(self, why):
        return ('The operation journal %s of volume %s is not one this collection wrote: %s. Refusing to act on it. '
                'Check the volume\'s files (volume_info); if no operation is running on it, remove the journal by '
                'hand, or delete the volume with state=absent force=true.' % (self.journal_path, self.volume, why.rstrip('.')))

    def _journal_problem(self, journal):
        op = journal.get('op')
        fields = JOURNAL_FIELDS.get(op)
        if fields is None:
            return 'names an unknown operation %r' % (op,)
        extra = set(journal) - set(fields) - set(['op'])
        if extra:
            return 'has unexpected fields %s' % ', '.join(sorted(extra))
        for key, (kind, required) in fields.items():
            if key not in journal:
                if required:
                    return 'has no %r field' % key
                continue
            value = journal[key]
            if kind == 'file' and not self.owns(value):
                return 'names %r as %s, which is not a file of this volume' % (value, key)
            if kind == 'files' and not (isinstance(value, list) and all(self.owns(v) for v in value)):
                return 'names files (%r) that are not all files of this volume' % (value,)
            if kind == 'bool' and not isinstance(value, bool):
                return 'has a non-boolean %s %r' % (key, value)
            if kind == 'size' and not (_is_int(value) and 0 < value <= naming.MAX_SIZE):
                return 'has an invalid %s %r' % (key, value)
            if kind == 'format' and value not in ('raw', 'qcow2'):
                return 'has an invalid %s %r' % (key, value)
            if kind == 'snapshot' and not (isinstance(value, str) and naming.NAME_RE.fullmatch(value)
                                           and value not in layout.RESERVED_SNAPSHOT_NAMES):
                return 'has an invalid snapshot name %r' % (value,)
            if kind == 'mode' and value not in ('stale', 'active', 'middle'):
                return 'has an invalid mode %r' % (value,)
        if op == 'create' and journal['part'] != self.part:
            return 'names %r as the copy in progress, not %s' % (journal['part'], self.part)
        if op == 'revert' and not (isinstance(journal['tmp'], str) and journal['tmp'].startswith('.')
                                   and journal['tmp'].endswith('.revert') and self.owns(journal['tmp'][1:-7])):
            return 'names %r as the temporary file of a revert, not .<file of this volume>.revert' % (journal['tmp'],)
        if op == 'snapshot_create' and journal['file'] != layout.snapshot_file(self.volume, journal['snapshot']):
            return 'names %r as the overlay of snapshot %s' % (journal['file'], journal['snapshot'])
        if op == 'extend' and journal['size'] <= journal['from']:
            return 'extends from %d to %d bytes' % (journal['from'], journal['size'])
        if op == 'snapshot_delete' and journal['mode'] != 'stale' and 'base' not in journal:
            return 'has no base file'
        if op == 'snapshot_delete' and journal['mode'] == 'middle' and 'upper' not in journal:
            return 'has no upper file'
        if op == 'clone' and not journal['snapshot'].startswith('tmp-snap-'):
            return 'names %r as the temporary snapshot of a clone' % (journal['snapshot'],)
        return None

    def write_journal(self, entry):
        problem = self._journal_problem(entry)
        if problem:     # a bug of ours: never write what we would refuse
            raise StorageError('Internal error: the journal of volume %s %s.' % (self.volume, problem))
        fileio.write_json(self.journal_path, entry, mode=0o600)

    def clear_journal(self):
        if fileio.unlink(self.journal_path):
            fileio.fsync_dir(self.directory)


# Fields of each journal: name -> (kind, required)
JOURNAL_FIELDS = {
    'delete': {'files': ('files', False)},
    'create': {'part': ('str', True), 'made_base': ('bool', False)},
    'extend': {'from': ('size', True), 'size': ('size', True), 'file': ('file', True), 'format': ('format', True)},
    'snapshot_create': {'snapshot': ('snapshot', True), 'file': ('file', True)},
    'snapshot_delete': {'snapshot': ('snapshot', True), 'file': ('file', True), 'mode': ('mode', True),
                        'base': ('file', False), 'base_format': ('format', False), 'upper': ('file', False),
                        'keep_file': ('bool', False)},
    'revert': {'tmp': ('str', True)},
    'clone': {'snapshot': ('snapshot', True), 'had_info': ('bool', True)},
}
