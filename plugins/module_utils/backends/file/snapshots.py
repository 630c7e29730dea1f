# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Snapshots of file volumes: qcow2 overlays in Cinder's .info map.

Create: a new overlay backed by the active file. Delete, in any position:
commit the snapshot's overlay into its backing file (-d: the overlay stays
intact, so the step can be repeated), re-point the file above, then update
the map and remove the overlay (Cinder bug 1468445 lost a point in time by
committing the other way). Revert to the latest: a new empty overlay on the
same backing file."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

from ansible_collections.blockyard.storage.plugins.module_utils import fileio, qcow2, qemu_img
from ansible_collections.blockyard.storage.plugins.module_utils.backends.file import layout
from ansible_collections.blockyard.storage.plugins.module_utils.errors import (
    Conflict, NotFound, StorageError, UnsafeImage)
from ansible_collections.blockyard.storage.plugins.module_utils.plan import Plan
from ansible_collections.blockyard.storage.plugins.module_utils.runner import checkpoint
from ansible_collections.blockyard.storage.plugins.module_utils.backends.file.state import _fingerprint


class Snapshots:
    """The snapshot half of FileBackend (a mixin)."""

    # ------------------------------------------------------------ snapshots
    def plan_snapshot_create(self, name, snap):
        plan = Plan('snapshot_present')
        volume = self.require_state(name)
        self.validate_snapshot_name(snap)
        if snap in volume.snapshots:
            plan.after = self._model(volume)
            return plan, plan.after
        overlay = layout.check_snapshot_file(name, snap)
        self.refuse_in_use(volume, 'create snapshot %s of volume %s' % (snap, name))
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
        plan.after = self._predict(volume, dict(volume.info or {'active': volume.active}, active=overlay,
                                                **{snap: overlay}))
        return self._record_adopted(plan, volume), self._model(volume)

    def _snapshot_create_files(self, book, snap, active, active_fmt, size):
        overlay = layout.snapshot_file(book.volume, snap)
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

    def plan_snapshot_delete(self, name, snap):
        plan = Plan('snapshot_absent')
        volume = self.load_state(name)
        if volume is None or snap not in volume.snapshots:
            plan.after = self._model(volume) if volume else None
            return plan, plan.after
        entry = self._snapshot_delete_entry(volume.book, volume.info, snap, volume)
        self.refuse_in_use(volume, 'delete snapshot %s of volume %s' % (snap, name))
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
        plan.after = self._predict(volume, after)
        return self._record_adopted(plan, volume), self._model(volume)

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
        volume = volume or self.require_state(book.volume)
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
        volume = self.require_state(name)
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
        plan.after = self._model(volume)
        if not self._has_new_data(top.path):
            return plan, plan.after
        self.refuse_in_use(volume, 'revert volume %s to snapshot %s' % (name, snap))
        tmp = '.%s.revert' % top.file
        journal = {'op': 'revert', 'tmp': tmp}
        plan.on_failure(self._undo, volume.book, journal)
        plan.add('', volume.book.write_journal, journal)
        plan.add('discard the data written since snapshot %s (new empty %s on %s)'
                 % (snap, top.file, top.backing_file),
                 self._revert_files, volume, tmp)
        plan.add('', volume.book.clear_journal)
        return self._record_adopted(plan, volume), self._model(volume)

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
