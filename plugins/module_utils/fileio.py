# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""File helpers: atomic writes, JSON bookkeeping, sparse and thick files.

Whoever can write into a volume directory is not trusted, so every file is
opened with O_NOFOLLOW and O_NONBLOCK and checked with fstat before use: a
symbolic link, a FIFO, a directory or a file with more than one hard link
where one of our regular files is expected is refused (UnsafeFile), never
followed. OSErrors become StorageErrors that name the file and the fix."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import json
import os
import stat
import tempfile

from ansible_collections.blockyard.storage.plugins.module_utils.errors import (
    Conflict, InvalidInput, StorageError, UnsafeImage)

# Filesystems whose fallocate(2) allocates unwritten extents that read back as
# zeros.  Elsewhere (FUSE, NFS < 4.2, unknown) thick files are written zeros.
ZERO_FALLOCATE_FS = frozenset(['ext4', 'xfs', 'btrfs', 'tmpfs'])
ZERO_BLOCK = 4 * 1024 * 1024


SAFE_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, 'O_CLOEXEC', 0)
MAX_JSON = 1024 * 1024

_HINTS = {
    errno.ENOSPC: 'free space on the filesystem, then re-run',
    errno.EDQUOT: 'raise the quota or free space, then re-run',
    errno.EACCES: 'check the permissions of the file and its directory (and the export options of the share), '
                  'then re-run',
    errno.EPERM: 'check the permissions and attributes of the file and its directory (lsattr: an immutable or '
                 'append-only file cannot be changed even by root), then re-run',
    errno.EROFS: 'the filesystem is mounted read-only: remount it read-write, then re-run',
    errno.EIO: 'the storage reported an I/O error: check it (dmesg, the share\'s server), then re-run',
    errno.ENOENT: 'the file disappeared while it was being used: check what else manages this directory, then '
                  're-run',
    errno.ESTALE: 'the share went stale: remount it (blockyard.storage.share_mount), then re-run',
}


def os_error(exc, doing, path=None):
    """A StorageError for an OSError: what failed on which file, why, and
    what to do."""
    path = path or getattr(exc, 'filename', None)
    hint = _HINTS.get(exc.errno, 'check the file and its filesystem, then re-run')
    return StorageError('%s failed%s: %s. %s.' % (doing, ' on %s' % path if path else '', exc.strerror or exc,
                                                  hint[0].upper() + hint[1:]),
                        path=path, errno=exc.errno)


class UnsafeFile(UnsafeImage):
    """A link, FIFO, directory or multiply-linked file where one of our
    regular files is expected."""


def _kind(st):
    for test, name in ((stat.S_ISLNK, 'a symbolic link'), (stat.S_ISDIR, 'a directory'), (stat.S_ISFIFO, 'a FIFO'),
                       (stat.S_ISSOCK, 'a socket'), (stat.S_ISBLK, 'a block device'),
                       (stat.S_ISCHR, 'a character device')):
        if test(st.st_mode):
            return name
    return 'not a regular file'


def _unsafe_file(path, what):
    return UnsafeFile('%s is %s, not a regular file of this collection: refusing to use it (links and special '
                      'files are never followed, whoever put them there). Inspect it and remove it by hand.'
                      % (path, what), path=path)


def check_regular(path, st):
    """Refuse anything but a regular file with one link (st from fstat/lstat)."""
    if not stat.S_ISREG(st.st_mode):
        raise _unsafe_file(path, _kind(st))
    if st.st_nlink > 1:
        raise _unsafe_file(path, 'a file with %d hard links (another name may be outside the volume directory)'
                           % st.st_nlink)
    return st


def open_regular(path, flags=os.O_RDONLY, what=None):
    """Open one of our regular files without following links or blocking on
    FIFOs; return (fd, stat). ENOENT is raised as is (callers decide)."""
    try:
        fd = os.open(path, flags | SAFE_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _unsafe_file(path, 'a symbolic link')
        if exc.errno in (errno.EISDIR, errno.ENXIO):
            raise _unsafe_file(path, _kind(os.lstat(path)) if os.path.lexists(path) else 'not a regular file')
        if exc.errno == errno.ENOENT:
            raise
        raise os_error(exc, 'Opening %s' % (what or 'the file'), path)
    try:
        st = check_regular(path, os.fstat(fd))
        if not flags & (os.O_WRONLY | os.O_RDWR):
            # back to blocking reads; a regular file never blocks anyway
            import fcntl
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def lstat_regular(path):
    """lstat of one of our files: None when absent, UnsafeFile when it is
    not a regular file with one link."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise os_error(exc, 'Reading the status of the file', path)
    return check_regular(path, st)


def fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, 'O_DIRECTORY', 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise os_error(exc, 'Flushing the directory', directory)


def fsync_file(path):
    """Flush a file's data to stable storage (after qemu-img wrote it: it
    does not fsync), so that bookkeeping that names it never outlives it."""
    try:
        fd, _st = open_regular(path, os.O_RDONLY, 'the image')
    except OSError as exc:
        raise os_error(exc, 'Flushing the image', path)
    try:
        os.fsync(fd)
    except OSError as exc:
        raise os_error(exc, 'Flushing the image', path)
    finally:
        os.close(fd)


def ownership_of(path):
    """(uid, gid, mode) of one of our files, or None when it is absent."""
    st = lstat_regular(path)
    return None if st is None else (st.st_uid, st.st_gid, st.st_mode & 0o7777)


def atomic_write(path, data, mode=0o644, like=None):
    """Write data (bytes or str) to path: temp file in the same directory,
    fsync, rename over path, fsync the directory. Readers see the old or the
    new content, never a mix; a crash leaves at most a hidden temp file.

    The new file keeps the owner, group and mode of the file it replaces (a
    .info that cinder-volume writes as its own user stays writable for it);
    a new file takes those of `like` (the volume's file) when given, else
    root's and `mode`."""
    if isinstance(data, str):
        data = data.encode('utf-8')
    directory = os.path.dirname(os.path.abspath(path))
    owner = ownership_of(path) or (ownership_of(like) if like else None)
    try:
        fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), suffix='.tmp', dir=directory)
    except OSError as exc:
        raise os_error(exc, 'Creating a temporary file for %s' % os.path.basename(path), directory)
    try:
        try:
            if owner is not None:
                if os.geteuid() == 0 and (owner[0], owner[1]) != (os.geteuid(), os.getegid()):
                    os.fchown(fd, owner[0], owner[1])
                os.fchmod(fd, owner[2])
            else:
                os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException as exc:
        _unlink_quietly(tmp)
        if isinstance(exc, OSError):
            raise os_error(exc, 'Writing %s' % os.path.basename(path), path)
        raise
    fsync_dir(directory)


def dump_json(data):
    """Cinder's .info layout: indent=1, sorted keys."""
    return json.dumps(data, indent=1, sort_keys=True)


def write_json(path, data, mode=0o644, like=None):
    atomic_write(path, dump_json(data) + '\n', mode, like)


def read_json(path, what):
    """Read a JSON object; None if the file is absent; StorageError if it is
    corrupt, UnsafeFile if it is a link or not a regular file."""
    try:
        fd, _st = open_regular(path, os.O_RDONLY, what)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise os_error(exc, 'Reading %s' % what, path)
    try:
        chunks, size = [], 0
        while size <= MAX_JSON:
            chunk = os.read(fd, MAX_JSON + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise os_error(exc, 'Reading %s' % what, path)
    finally:
        os.close(fd)
    raw = b''.join(chunks)
    if len(raw) > MAX_JSON:
        raise StorageError('%s %s is larger than 1 MiB: it is not a file this collection or Cinder wrote. Inspect '
                           'it and remove or restore it by hand.' % (what, path), path=path)
    try:
        data = json.loads(raw.decode('utf-8'))
    except ValueError as exc:
        raise StorageError('%s %s is not valid JSON (%s): it is damaged. Inspect it and restore it by hand (or '
                           'from a backup) before using the volume.' % (what, path, exc), path=path)
    if not isinstance(data, dict):
        raise StorageError('%s %s holds JSON that is not an object: it is damaged. Inspect it and restore it by hand '
                           'before using the volume.' % (what, path), path=path)
    return data


def rename(src, dst):
    """Rename one of our files into place, then flush the directory."""
    try:
        os.rename(src, dst)
    except OSError as exc:
        raise os_error(exc, 'Moving %s into place as %s' % (os.path.basename(src), os.path.basename(dst)), dst)
    fsync_dir(os.path.dirname(dst))


def unlink(path):
    """Remove one of our files if present; return True when something was
    removed. A directory is refused (never ours), a link is removed as a
    name (never followed)."""
    try:
        os.unlink(path)
        return True
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return False
        if exc.errno in (errno.EISDIR, errno.EPERM) and os.path.isdir(path) and not os.path.islink(path):
            raise _unsafe_file(path, 'a directory')
        raise os_error(exc, 'Removing the file', path)


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
    src_fd, _st = open_regular(src, os.O_RDONLY, 'the source image')
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


def resolve_owner(owner=None, group=None):
    """(uid, gid) for owner/group names or ids, -1 where not given;
    InvalidInput for an unknown name or an id out of range."""
    import grp
    import pwd

    def resolve(value, what, lookup):
        if value is None:
            return -1
        text = str(value)
        if text.isdigit():
            number = int(text)
            if number > 0xfffffffe:
                raise InvalidInput('%s id %s is out of range (0..4294967294).' % (what, text))
            return number
        try:
            return lookup(text)
        except KeyError:
            raise InvalidInput('Unknown %s %r: create it on the host or fix the %s option.'
                               % (what, text, 'owner' if what == 'user' else 'group'))
    return (resolve(owner, 'user', lambda n: pwd.getpwnam(n).pw_uid),
            resolve(group, 'group', lambda n: grp.getgrnam(n).gr_gid))


def ownership_differs(path, uid=-1, gid=-1, mode=None):
    st = lstat_regular(path)
    if st is None:
        return False
    return ((uid != -1 and uid != st.st_uid) or (gid != -1 and gid != st.st_gid)
            or (mode is not None and (st.st_mode & 0o7777) != mode))


def apply_ownership(path, uid=-1, gid=-1, mode=None):
    """Set owner, group and mode of one of our files through a descriptor
    opened without following links; return True when anything changed."""
    if uid == -1 and gid == -1 and mode is None:
        return False
    try:
        fd, st = open_regular(path, os.O_RDONLY, 'the file')
    except OSError as exc:
        raise os_error(exc, 'Setting the ownership', path)
    changed = False
    try:
        if (uid != -1 and uid != st.st_uid) or (gid != -1 and gid != st.st_gid):
            os.fchown(fd, uid, gid)
            changed = True
        if mode is not None and (st.st_mode & 0o7777) != mode:
            os.fchmod(fd, mode)
            changed = True
    except OSError as exc:
        raise os_error(exc, 'Setting the owner, group or mode', path)
    finally:
        os.close(fd)
    return changed


def truncate(path, size):
    """Set the size of one of our files (no links followed)."""
    try:
        fd, _st = open_regular(path, os.O_WRONLY, 'the image')
    except OSError as exc:
        raise os_error(exc, 'Resizing', path)
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    except OSError as exc:
        raise os_error(exc, 'Resizing', path)
    finally:
        os.close(fd)


def open_by_others(paths):
    """[(pid, command, path)] of the processes of this host, other than this
    one, that hold one of `paths` open (their /proc/<pid>/fd links)."""
    wanted = set(os.path.realpath(p) for p in paths)
    me = os.getpid()
    found = []
    try:
        pids = [int(e) for e in os.listdir('/proc') if e.isdigit()]
    except OSError:
        return found
    for pid in pids:
        if pid == me:
            continue
        fd_dir = '/proc/%d/fd' % pid
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue        # gone, or not ours to read
        for fd in fds:
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if target in wanted:
                try:
                    with open('/proc/%d/comm' % pid) as handle:
                        comm = handle.read().strip()
                except (IOError, OSError):
                    comm = '?'
                found.append((pid, comm, target))
                break
    return found
