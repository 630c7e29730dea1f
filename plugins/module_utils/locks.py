# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Volume locks: a POSIX (fcntl) lock on a lock file beside the volume.

POSIX record locks are honoured across hosts on GlusterFS and on NFS with
locking, so every host sharing a share serializes on the same file. A lock
file removed by the holder (volume delete) is detected by waiters, which
retry on the new file. Locks are re-entrant within one process (POSIX locks
are per process: closing a second descriptor of the same file would drop the
first lock).

The lock file is opened with O_NOFOLLOW and must be a regular file with one
link: a symbolic link planted in its place never makes a root-owned file
appear where it points. Several volumes (a copy's source and destination)
are locked in one fixed order, so that two copies in opposite directions
cannot deadlock."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import contextlib
import errno
import fcntl
import os
import time

from ansible_collections.blockyard.storage.plugins.module_utils import fileio
from ansible_collections.blockyard.storage.plugins.module_utils.errors import LockTimeout, StorageError

DEFAULT_TIMEOUT = 600
_held = {}


def lock_path(directory, volume):
    """The lock file of a volume kept as files (volume-<name>.lock beside it,
    the file backend's layout); other backends lock elsewhere."""
    return os.path.join(directory, 'volume-%s.lock' % volume)


@contextlib.contextmanager
def file_lock(path, timeout=DEFAULT_TIMEOUT, what=None):
    key = os.path.abspath(path)
    # re-entrant only in the process that took the lock: a forked child
    # inherits _held but not the POSIX lock
    if key in _held and _held[key][2] == os.getpid():
        _held[key][1] += 1
        try:
            yield
        finally:
            _held[key][1] -= 1
        return
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        try:
            fd = os.open(key, os.O_RDWR | os.O_CREAT | fileio.SAFE_FLAGS, 0o600)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO):
                raise StorageError('The lock file %s of %s is a link, a directory or a special file, not a lock '
                                   'file of this collection: refusing to use it. Inspect it and remove it by hand.'
                                   % (key, what or key), path=key)
            raise fileio.os_error(exc, 'Opening the lock file of %s' % (what or key), key)
        try:
            fileio.check_regular(key, os.fstat(fd))
        except StorageError:
            os.close(fd)
            raise
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (IOError, OSError) as exc:
            os.close(fd)
            if exc.errno not in (errno.EACCES, errno.EAGAIN):
                raise StorageError('Cannot lock %s for %s: %s. Shares need working POSIX locks (NFS: lockd).'
                                   % (key, what or key, exc.strerror), path=key)
            if time.monotonic() >= deadline:
                raise LockTimeout('Timed out after %ss waiting for the lock of %s (%s): another operation on it is '
                                  'running. Wait for it to finish, then re-run.' % (timeout, what or key, key),
                                  path=key)
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
            continue
        # The holder before us may have removed the file (volume deleted):
        # then our lock is on an orphan inode; start again on the new file.
        try:
            same = os.fstat(fd).st_ino == os.stat(key).st_ino
        except OSError:
            same = False
        if not same:
            os.close(fd)
            continue
        break
    _held[key] = [fd, 1, os.getpid()]
    try:
        yield
    finally:
        entry = _held.pop(key)
        os.close(entry[0])


def volume_lock(directory, volume, timeout=DEFAULT_TIMEOUT):
    return file_lock(lock_path(directory, volume), timeout, what='volume %s' % volume)


@contextlib.contextmanager
def volume_locks(pairs, timeout=DEFAULT_TIMEOUT):
    """Lock several volumes, given as (directory, name) pairs, always in
    the same order (sorted), whatever order the caller names them in."""
    with contextlib.ExitStack() as stack:
        for directory, volume in sorted(set(pairs)):
            stack.enter_context(volume_lock(directory, volume, timeout))
        yield


def check_lock_file(directory, volume):
    """What taking the lock would refuse, without taking it (check mode
    writes nothing, not even a lock file, but predicts the real run)."""
    path = lock_path(directory, volume)
    try:
        fileio.lstat_regular(path)
    except StorageError as exc:
        raise StorageError('The lock file %s of volume %s cannot be used: %s' % (path, volume, exc.msg), path=path)


def remove_lock(directory, volume):
    """Remove a volume's lock file while holding it (volume deleted)."""
    try:
        os.unlink(lock_path(directory, volume))
    except OSError:
        pass
