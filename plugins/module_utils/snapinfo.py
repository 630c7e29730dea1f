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
import stat

from ansible_collections.blockyard.storage.plugins.module_utils import fileio, naming
from ansible_collections.blockyard.storage.plugins.module_utils.errors import UnsafeImage

META_VERSION = 1


class Bookkeeping:
    """The sidecar files of one volume in one directory."""

    def __init__(self, directory, volume):
        self.directory = directory
        self.volume = volume
        self.base = naming.volume_file(volume)
        self.info_path = os.path.join(directory, naming.sidecar_file(volume, 'info'))
        self.meta_path = os.path.join(directory, naming.sidecar_file(volume, 'meta'))
        self.journal_path = os.path.join(directory, naming.sidecar_file(volume, 'journal'))
        self.pattern = naming.chain_pattern(volume)

    def path(self, filename):
        return os.path.join(self.directory, filename)

    # .info -------------------------------------------------------------
    def read_info(self, check_files=True):
        """The validated snapshot map, or None when there is no .info.
        check_files=False leaves the existence checks of the files it names
        to the caller (load() checks them along the chain walk)."""
        data = fileio.read_json(self.info_path, 'Snapshot map')
        if data is None:
            return None
        if 'active' not in data:
            raise UnsafeImage('Snapshot map %s has no "active" entry: it is damaged. Rebuild it from the chain shown '
                              'by volume_info before touching volume %s.' % (self.info_path, self.volume),
                              path=self.info_path)
        for key, value in data.items():
            if not isinstance(value, str) or not self.pattern.match(value):
                raise UnsafeImage('Snapshot map %s maps %r to %r, which is not a file of volume %s (expected a bare '
                                  'name like %s.<snapshot>): refusing to touch it. Fix the map by hand.'
                                  % (self.info_path, key, value, self.volume, self.base), path=self.info_path)
            if check_files:
                self.check_file(key, value)
        return data

    def check_file(self, key, value):
        """A file named by the map must be a regular file (not a link)."""
        try:
            is_file = stat.S_ISREG(os.lstat(self.path(value)).st_mode)
        except OSError:
            is_file = False
        if not is_file:
            raise UnsafeImage('Snapshot map %s maps %r to %s, which does not exist (or is a link): the chain is '
                              'incomplete. Restore the file or fix the map; nothing was touched.'
                              % (self.info_path, key, value), path=self.info_path)

    def write_info(self, data):
        # byte for byte what Cinder's json.dump(indent=1, sort_keys=True)
        # writes: no trailing newline
        fileio.atomic_write(self.info_path, fileio.dump_json(data))

    def active(self, info=None):
        info = self.read_info() if info is None else info
        return info['active'] if info else self.base

    @staticmethod
    def snapshots(info):
        return dict((k, v) for k, v in (info or {}).items() if k != 'active')

    # .meta -------------------------------------------------------------
    def read_meta(self):
        meta = fileio.read_json(self.meta_path, 'Volume record')
        if meta is not None and meta.get('format') not in ('raw', 'qcow2'):
            raise UnsafeImage('Volume record %s names format %r: expected raw or qcow2. Fix the record.'
                              % (self.meta_path, meta.get('format')), path=self.meta_path)
        return meta

    def write_meta(self, fmt, size_bytes, provisioning):
        fileio.write_json(self.meta_path, {'format': fmt, 'size_bytes': int(size_bytes),
                                           'provisioning': provisioning, 'version': META_VERSION})

    # .journal ----------------------------------------------------------
    def read_journal(self):
        return fileio.read_json(self.journal_path, 'Operation journal')

    def write_journal(self, entry):
        fileio.write_json(self.journal_path, entry)

    def clear_journal(self):
        if fileio.unlink(self.journal_path):
            fileio.fsync_dir(self.directory)
