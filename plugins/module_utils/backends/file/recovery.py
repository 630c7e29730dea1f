# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Recovery of the file backend: an operation that a crash interrupted is
completed (merges roll forward) or undone (creations roll back) from its
validated journal, by the next task on the volume."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

from ansible_collections.blockyard.storage.plugins.module_utils import fileio, qcow2
from ansible_collections.blockyard.storage.plugins.module_utils.backends.file import layout
from ansible_collections.blockyard.storage.plugins.module_utils.errors import StorageError
from ansible_collections.blockyard.storage.plugins.module_utils.runner import checkpoint
from ansible_collections.blockyard.storage.plugins.module_utils.backends.file.state import OPERATIONS


class JournalStale(StorageError):
    """The premises of an interrupted operation no longer hold (another tool
    changed the chain since): its journal is discarded, not replayed."""


class Recovery:
    """The recovery half of FileBackend (a mixin: it uses the backend's
    book(), path(), load_state() and the snapshot helpers)."""

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
                volume = self.require_state(book.volume)
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
        overlay = layout.snapshot_file(book.volume, snap)
        if snap in info:
            if info[snap] == info['active'] and not self._has_new_data(book.path(overlay)):
                volume = self.require_state(book.volume)
                entry = volume.entry(overlay)
                if entry is not None and entry.backing_file:
                    del info[snap]
                    info['active'] = entry.backing_file
                    book.write_info(info)
                    checkpoint('clone.info_restored')
            if snap in info:        # it holds data of its own: merge it like any snapshot
                self._delete_snapshot_now(book, snap)
                info = book.read_info(check_files=False) or {}
        if overlay not in info.values():
            fileio.unlink(book.path(overlay))
            fileio.fsync_dir(self.directory)
        self._drop_temporary_info(book, had_info)
