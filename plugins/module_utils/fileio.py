# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""File helpers: atomic writes, JSON bookkeeping, sparse and thick files."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import json
import os
import tempfile

from ansible_collections.blockyard.storage.plugins.module_utils.errors import StorageError, Conflict

# Filesystems whose fallocate(2) allocates unwritten extents that read back as
# zeros.  Elsewhere (FUSE, NFS < 4.2, unknown) thick files are written zeros.
ZERO_FALLOCATE_FS = frozenset(['ext4', 'xfs', 'btrfs', 'tmpfs'])
ZERO_BLOCK = 4 * 1024 * 1024


def fsync_dir(directory):
    fd = os.open(directory, os.O_RDONLY | getattr(os, 'O_DIRECTORY', 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path, data, mode=0o644):
    """Write data (bytes or str) to path: temp file in the same directory,
    fsync, rename over path, fsync the directory. Readers see the old or the
    new content, never a mix; a crash leaves at most a hidden temp file."""
    if isinstance(data, str):
        data = data.encode('utf-8')
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), suffix='.tmp', dir=directory)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    fsync_dir(directory)


def dump_json(data):
    """Cinder's .info layout: indent=1, sorted keys."""
    return json.dumps(data, indent=1, sort_keys=True)


def write_json(path, data, mode=0o644):
    atomic_write(path, dump_json(data) + '\n', mode)


def read_json(path, what):
    """Read a JSON object; None if the file is absent; StorageError if corrupt."""
    try:
        with open(path, 'rb') as handle:
            raw = handle.read(1024 * 1024 + 1)
    except IOError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise StorageError('Cannot read %s %s: %s.' % (what, path, exc.strerror), path=path)
    if len(raw) > 1024 * 1024:
        raise StorageError('%s %s is larger than 1 MiB: it is not a file this collection wrote.' % (what, path),
                           path=path)
    try:
        data = json.loads(raw.decode('utf-8'))
    except ValueError as exc:
        raise StorageError('%s %s is not valid JSON (%s): restore it from the chain (see volume_info) or a backup '
                           'before touching the volume.' % (what, path, exc), path=path)
    if not isinstance(data, dict):
        raise StorageError('%s %s holds JSON that is not an object: restore it before touching the volume.'
                           % (what, path), path=path)
    return data


def unlink(path):
    """Remove a file if present; return True when something was removed."""
    try:
        os.unlink(path)
        return True
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
        return False


def _unlink_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def fs_type(path):
    """The filesystem type of the mount holding path, from /proc/self/mountinfo."""
    target = os.path.realpath(path)
    best, best_type = '', None
    try:
        with open('/proc/self/mountinfo') as handle:
            for line in handle:
                left, _sep, right = line.partition(' - ')
                fields = left.split()
                if len(fields) < 5:
                    continue
                mount_point = fields[4].replace('\\040', ' ')
                if (target == mount_point or target.startswith(mount_point.rstrip('/') + '/')) \
                        and len(mount_point) >= len(best):
                    best, best_type = mount_point, right.split()[0]
    except IOError:
        return None
    return best_type


def _create_exclusive(path, mode):
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            raise Conflict('Cannot create %s: a file of that name already exists. Remove it or choose another '
                           'volume name.' % path, path=path)
        raise StorageError('Cannot create %s: %s.' % (path, exc.strerror), path=path)


def create_sparse(path, size, mode=0o660):
    """A sparse file of size bytes (the `truncate` of Cinder)."""
    fd = _create_exclusive(path, mode)
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        _unlink_quietly(path)
        raise StorageError('Cannot size %s to %d bytes: %s.' % (path, size, exc.strerror), path=path)
    os.close(fd)


def create_thick(path, size, mode=0o660):
    """A fully allocated file that reads as zeros.

    fallocate(2) on filesystems where it is known to read back as zeros,
    written zeros elsewhere. On any failure (ENOSPC included) the partial file
    is removed before the error is raised."""
    fd = _create_exclusive(path, mode)
    try:
        allocate_zeros(path, fd, 0, size)
        os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        _unlink_quietly(path)
        hint = 'free space on the filesystem or choose thin provisioning' if exc.errno in (errno.ENOSPC, errno.EDQUOT) \
            else 'check the filesystem'
        raise StorageError('Cannot allocate %d bytes for %s: %s. The partial file was removed; %s.'
                           % (size, path, exc.strerror, hint), path=path, errno=exc.errno)
    os.close(fd)


def allocate_zeros(path, fd, start, length):
    """Allocate bytes start..start+length of the open file fd (at path) so
    that they read as zeros: fallocate(2) where the filesystem guarantees
    zeros, else written zeros (O_DIRECT from a page-aligned buffer where the
    filesystem allows it, like dd oflag=direct; buffered otherwise)."""
    if fs_type(os.path.dirname(os.path.abspath(path))) in ZERO_FALLOCATE_FS:
        os.posix_fallocate(fd, start, length)
        return
    import mmap
    zeros = mmap.mmap(-1, ZERO_BLOCK)        # anonymous: page-aligned zeros
    try:
        offset, end = start, start + length
        direct = _open_direct(path) if start % 4096 == 0 else None
        if direct is not None:
            try:
                while end - offset >= ZERO_BLOCK:
                    offset += os.pwrite(direct, zeros, offset)
            except OSError as exc:
                if exc.errno != errno.EINVAL:   # EINVAL: no O_DIRECT here after all
                    raise
            finally:
                os.close(direct)
        with memoryview(zeros) as view:     # released even on ENOSPC, or zeros.close() raises BufferError
            while offset < end:
                with view[:min(ZERO_BLOCK, end - offset)] as part:
                    offset += os.pwrite(fd, part, offset)
    finally:
        zeros.close()


def _open_direct(path):
    flag = getattr(os, 'O_DIRECT', 0)
    if not flag:
        return None
    try:
        return os.open(path, os.O_WRONLY | flag)
    except OSError:
        return None


def reflink(src, dst, mode=0o660):
    """Copy src to dst sharing extents (FICLONE). Returns False, leaving no
    dst, where the filesystem cannot reflink; raises on other errors."""
    import fcntl
    ficlone = 0x40049409
    src_fd = os.open(src, os.O_RDONLY)
    try:
        dst_fd = _create_exclusive(dst, mode)
        try:
            fcntl.ioctl(dst_fd, ficlone, src_fd)
            os.fsync(dst_fd)
        except (IOError, OSError) as exc:
            os.close(dst_fd)
            _unlink_quietly(dst)
            if exc.errno in (errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS,
                             getattr(errno, 'ENOTSUP', errno.EOPNOTSUPP)):
                return False
            raise StorageError('Cannot reflink %s to %s: %s.' % (src, dst, exc.strerror), path=dst)
        os.close(dst_fd)
    finally:
        os.close(src_fd)
    return True


def apply_ownership(path, owner=None, group=None, mode=None):
    """Set owner, group and mode; return True when anything changed."""
    import grp
    import pwd
    changed = False
    st = os.stat(path)
    uid = gid = -1
    try:
        if owner is not None:
            uid = int(owner) if str(owner).isdigit() else pwd.getpwnam(owner).pw_uid
        if group is not None:
            gid = int(group) if str(group).isdigit() else grp.getgrnam(group).gr_gid
    except KeyError as exc:
        raise StorageError('Cannot set ownership of %s: unknown user or group %s. Create it or fix the owner/group '
                           'option.' % (path, exc), path=path)
    if (uid != -1 and uid != st.st_uid) or (gid != -1 and gid != st.st_gid):
        os.chown(path, uid, gid)
        changed = True
    if mode is not None and (st.st_mode & 0o7777) != mode:
        os.chmod(path, mode)
        changed = True
    return changed
