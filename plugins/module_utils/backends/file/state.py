# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What is on disk for one file volume (read and checked by the backend),
and small helpers of the file backend's modules."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

from ansible_collections.blockyard.storage.plugins.module_utils.backends.file.bookkeeping import Bookkeeping

OPERATIONS = {'delete': 'delete', 'create': 'create', 'extend': 'extension', 'snapshot_create': 'snapshot create',
              'snapshot_delete': 'snapshot delete', 'revert': 'revert', 'clone': 'clone'}


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
        self.pending = pending
        self._snapshots = None             # the journal of an interrupted operation, or None
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
        if self._snapshots is None:     # read once: listings ask for it per snapshot
            self._snapshots = Bookkeeping.snapshots(self.info)
        return self._snapshots

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


def _round_up(value, unit):
    return (value + unit - 1) // unit * unit


def _fingerprint(path):
    """What changes when a file is written: size, mtime and ctime."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns)
