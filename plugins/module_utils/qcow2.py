# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""qcow2 header reader and image-safety checks (pure Python, stdlib only).

Nothing here runs qemu-img: the header, its extensions and the backing file
name are parsed from the first cluster of each file, so a whole chain is listed
with one open() and one read() per file. Every refusal is an UnsafeImage whose
message names the file and what is wrong with it.

Layout (big-endian): 0 magic, 4 version, 8 backing_file_offset (u64, 0 = none),
16 backing_file_size (u32), 20 cluster_bits, 24 size (u64), 32 crypt_method,
72 incompatible_features (u64, v3), 80 compatible_features, 88
autoclear_features, 96 refcount_order (u32), 100 header_length (u32; v2 = 72).
Header extensions start at header_length: u32 type, u32 length, data padded to
8 bytes; type 0 ends the list.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import errno
import os
import re
import stat
import struct

from ansible_collections.blockyard.storage.plugins.module_utils.errors import UnsafeImage


QCOW2_MAGIC = b"QFI\xfb"

EXT_END = 0x00000000
EXT_BACKING_FORMAT = 0xe2792aca
EXT_FEATURE_TABLE = 0x6803f857
EXT_CRYPTO = 0x0537be77
EXT_BITMAPS = 0x23852875
EXT_DATA_FILE = 0x44415441

INCOMPAT_DIRTY = 1 << 0
INCOMPAT_CORRUPT = 1 << 1
INCOMPAT_DATA_FILE = 1 << 2
INCOMPAT_COMPRESSION = 1 << 3
INCOMPAT_EXTL2 = 1 << 4
INCOMPAT_KNOWN = (INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE
                  | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2)

CRYPT_NONE = 0
CRYPT_AES = 1
CRYPT_LUKS = 2

BACKING_FORMATS = ('raw', 'qcow2')

V2_HEADER_LENGTH = 72
V3_MIN_HEADER_LENGTH = 104
MIN_CLUSTER_BITS = 9
MAX_CLUSTER_BITS = 21
MAX_BACKING_FILE_SIZE = 1023
MAX_EXTENSIONS = 1024
# First read; a typical header, its extensions and backing name fit in 4 KiB.
# Anything further (never past the first cluster, at most 2 MiB) is read on demand.
READ_SIZE = 4096

# "json:{...}", "nbd://host", "file:/x", "http:..." -- any protocol prefix.
_PROTOCOL_RE = re.compile(r'^[A-Za-z][A-Za-z0-9+.-]*:')

_V2 = struct.Struct('>4sIQIIQI')   # magic .. crypt_method (36 bytes)
_V3 = struct.Struct('>QQQII')      # offset 72: incompat, compat, autoclear, refcount_order, header_length
_EXT = struct.Struct('>II')


class Qcow2Header(object):
    """Parsed qcow2 header. ``size`` is the virtual size in bytes."""

    __slots__ = ('path', 'version', 'backing_file', 'backing_format', 'cluster_bits', 'size',
                 'crypt_method', 'incompatible_features', 'compatible_features',
                 'autoclear_features', 'refcount_order', 'header_length', 'extensions',
                 'data_file', 'backing_file_offset', 'backing_file_size')

    def __init__(self, path=None, version=None, backing_file=None, backing_format=None, cluster_bits=None,
                 size=None, crypt_method=None, incompatible_features=None, compatible_features=None,
                 autoclear_features=None, refcount_order=None, header_length=None, extensions=None,
                 data_file=None, backing_file_offset=None, backing_file_size=None):
        self.path = path
        self.version = version
        self.backing_file = backing_file
        self.backing_format = backing_format
        self.cluster_bits = cluster_bits
        self.size = size
        self.crypt_method = crypt_method
        self.incompatible_features = incompatible_features
        self.compatible_features = compatible_features
        self.autoclear_features = autoclear_features
        self.refcount_order = refcount_order
        self.header_length = header_length
        self.extensions = extensions
        self.data_file = data_file
        self.backing_file_offset = backing_file_offset
        self.backing_file_size = backing_file_size

    @property
    def cluster_size(self):
        return 1 << self.cluster_bits

    def to_dict(self):
        return dict((name, getattr(self, name)) for name in self.__slots__)

    def __repr__(self):
        return 'Qcow2Header(%s)' % ', '.join('%s=%r' % (n, getattr(self, n)) for n in self.__slots__)


class ChainEntry(object):
    """One file of a backing chain, top (active) file first."""

    __slots__ = ('file', 'path', 'format', 'backing_file', 'backing_format',
                 'virtual_size', 'allocated', 'apparent')

    def __init__(self, file=None, path=None, format=None, backing_file=None, backing_format=None,
                 virtual_size=None, allocated=None, apparent=None):
        self.file = file
        self.path = path
        self.format = format
        self.backing_file = backing_file
        self.backing_format = backing_format
        self.virtual_size = virtual_size
        self.allocated = allocated
        self.apparent = apparent

    def to_dict(self):
        return dict((name, getattr(self, name)) for name in self.__slots__)

    def __repr__(self):
        return 'ChainEntry(%s)' % ', '.join('%s=%r' % (n, getattr(self, n)) for n in self.__slots__)


def _unsafe(path, what, **details):
    details.setdefault('path', path)
    return UnsafeImage('Refusing image %s: %s.' % (path, what), **details)


def _open(path, nofollow=False):
    """Open read-only without blocking on FIFOs; return (fd, stat)."""
    flags = os.O_RDONLY | getattr(os, 'O_CLOEXEC', 0) | getattr(os, 'O_NONBLOCK', 0)
    if nofollow:
        flags |= getattr(os, 'O_NOFOLLOW', 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        if nofollow and os.path.islink(path):
            raise _unsafe(path, 'it is a symbolic link')
        raise
    try:
        st = os.fstat(fd)
    except Exception:
        os.close(fd)
        raise
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        os.close(fd)
        raise _unsafe(path, 'it is not a regular file or block device')
    return fd, st


def _pread(fd, offset, length):
    """Read up to length bytes at offset (short only at end of file)."""
    chunks = []
    while length > 0:
        chunk = os.pread(fd, length, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
        length -= len(chunk)
    return b''.join(chunks)


class _Buffer(object):
    """The start of a file, read once; extended on demand (large clusters only)."""

    def __init__(self, fd, path):
        self.fd = fd
        self.path = path
        self.data = _pread(fd, 0, READ_SIZE)
        self.eof = len(self.data) < READ_SIZE

    def get(self, offset, length, what):
        end = offset + length
        if end > len(self.data) and not self.eof:
            want = max(end, len(self.data) + 65536) - len(self.data)
            more = _pread(self.fd, len(self.data), want)
            self.data += more
            if len(more) < want:
                self.eof = True
        if end > len(self.data):
            raise _unsafe(self.path, 'the file is truncated: %s needs bytes %d..%d but the file has %d bytes'
                          % (what, offset, end, len(self.data)), reason='truncated')
        return self.data[offset:end]


def _decode(path, raw, what):
    try:
        return raw.decode('utf-8', 'strict')
    except UnicodeDecodeError:
        raise _unsafe(path, '%s %r is not valid UTF-8' % (what, raw), reason='bad_name')


def _parse(fd, path):
    buf = _Buffer(fd, path)
    if buf.data[:4] != QCOW2_MAGIC:
        raise _unsafe(path, 'no qcow2 magic (first bytes %r)' % buf.data[:4], reason='bad_magic')
    if len(buf.data) < 8:
        raise _unsafe(path, 'the file is truncated: %d bytes, too short for a qcow2 header' % len(buf.data),
                      reason='truncated')
    version = struct.unpack('>I', buf.data[4:8])[0]
    if version not in (2, 3):
        raise _unsafe(path, 'qcow2 version %d is not supported (only 2 and 3)' % version, reason='bad_version')
    fixed = V2_HEADER_LENGTH if version == 2 else V3_MIN_HEADER_LENGTH
    if len(buf.data) < fixed:
        raise _unsafe(path, 'the file is truncated: %d bytes, a qcow2 v%d header needs %d'
                      % (len(buf.data), version, fixed), reason='truncated')

    (_magic, _version, backing_offset, backing_size, cluster_bits, size,
     crypt_method) = _V2.unpack_from(buf.data, 0)
    if version == 2:
        incompat = compat = autoclear = 0
        refcount_order = 4
        header_length = V2_HEADER_LENGTH
    else:
        incompat, compat, autoclear, refcount_order, header_length = _V3.unpack_from(buf.data, 72)

    if not MIN_CLUSTER_BITS <= cluster_bits <= MAX_CLUSTER_BITS:
        raise _unsafe(path, 'cluster_bits %d is outside %d..%d' % (cluster_bits, MIN_CLUSTER_BITS, MAX_CLUSTER_BITS),
                      reason='bad_header')
    cluster_size = 1 << cluster_bits
    if version == 3:
        if header_length < V3_MIN_HEADER_LENGTH:
            raise _unsafe(path, 'header_length %d is below %d' % (header_length, V3_MIN_HEADER_LENGTH),
                          reason='bad_header')
        if header_length % 8:
            raise _unsafe(path, 'header_length %d is not a multiple of 8' % header_length, reason='bad_header')
        if header_length > cluster_size:
            raise _unsafe(path, 'header_length %d exceeds the cluster size %d' % (header_length, cluster_size),
                          reason='bad_header')
        if refcount_order > 6:
            raise _unsafe(path, 'refcount_order %d is above 6' % refcount_order, reason='bad_header')
        buf.get(0, header_length, 'the header')

    # Backing file name: within the first cluster, after the header.
    if backing_offset:
        if backing_size > MAX_BACKING_FILE_SIZE:
            raise _unsafe(path, 'backing_file_size %d is above %d' % (backing_size, MAX_BACKING_FILE_SIZE),
                          reason='bad_backing')
        if backing_offset < header_length:
            raise _unsafe(path, 'the backing file name (offset %d) overlaps the %d-byte header'
                          % (backing_offset, header_length), reason='bad_backing')
        if backing_offset + backing_size > cluster_size:
            raise _unsafe(path, 'the backing file name (offset %d, %d bytes) runs past the first cluster (%d bytes)'
                          % (backing_offset, backing_size, cluster_size), reason='bad_backing')
        ext_end = backing_offset
    else:
        ext_end = cluster_size

    # Header extensions.
    extensions = []
    backing_format = None
    data_file = None
    seen = set()
    offset = header_length
    while True:
        if len(extensions) >= MAX_EXTENSIONS:
            raise _unsafe(path, 'more than %d header extensions' % MAX_EXTENSIONS, reason='bad_extension')
        if offset + _EXT.size > ext_end:
            raise _unsafe(path, 'the header extension list at offset %d is not terminated before offset %d'
                          % (offset, ext_end), reason='bad_extension')
        if offset + 8 <= len(buf.data):   # fast path: already read
            ext_type, ext_len = _EXT.unpack_from(buf.data, offset)
        else:
            ext_type, ext_len = _EXT.unpack(buf.get(offset, _EXT.size, 'a header extension'))
        offset += 8
        if ext_type == EXT_END:
            break
        padded = (ext_len + 7) & ~7
        if offset + padded > ext_end:
            raise _unsafe(path, 'header extension 0x%08x (%d bytes at offset %d) runs past offset %d'
                          % (ext_type, ext_len, offset, ext_end), reason='bad_extension')
        if ext_type in (EXT_BACKING_FORMAT, EXT_DATA_FILE):
            if ext_type in seen:
                raise _unsafe(path, 'header extension 0x%08x appears twice' % ext_type, reason='bad_extension')
            data = buf.get(offset, ext_len, 'header extension 0x%08x' % ext_type)
            if ext_type == EXT_BACKING_FORMAT:
                if ext_len > 15:
                    raise _unsafe(path, 'backing format extension is %d bytes long' % ext_len,
                                  reason='bad_extension')
                backing_format = _decode(path, data, 'backing format')
            else:
                data_file = _decode(path, data, 'data file name')
        seen.add(ext_type)
        extensions.append((ext_type, ext_len))
        offset += padded

    backing_file = None
    if backing_offset:
        raw = buf.get(backing_offset, backing_size, 'the backing file name')
        backing_file = _decode(path, raw, 'backing file name')

    return Qcow2Header(
        path=path, version=version, backing_file=backing_file, backing_format=backing_format,
        cluster_bits=cluster_bits, size=size, crypt_method=crypt_method,
        incompatible_features=incompat, compatible_features=compat, autoclear_features=autoclear,
        refcount_order=refcount_order, header_length=header_length, extensions=extensions,
        data_file=data_file, backing_file_offset=backing_offset, backing_file_size=backing_size)


def is_qcow2(path):
    """True if the file starts with the qcow2 magic (reads 4 bytes; links
    are not followed, FIFOs not waited on)."""
    fd, _st = _open(path, nofollow=True)
    try:
        return _pread(fd, 0, 4) == QCOW2_MAGIC
    finally:
        os.close(fd)


def read_header(path):
    """Parse the qcow2 header of path; UnsafeImage if it is malformed.

    OSError (e.g. a missing file) is not caught.
    """
    fd, _st = _open(path)
    try:
        return _parse(fd, path)
    finally:
        os.close(fd)


def _check_backing_name(path, name, backing_format):
    """Structural checks on a backing file name, before any caller policy."""
    if name == '':
        raise _unsafe(path, 'the backing file name is empty', reason='bad_backing')
    if '\x00' in name:
        raise _unsafe(path, 'backing file %r contains a NUL byte' % name, reason='bad_backing', backing_file=name)
    if name in ('.', '..'):
        raise _unsafe(path, 'backing file %r is not a file name' % name, reason='bad_backing', backing_file=name)
    if _PROTOCOL_RE.match(name):
        raise _unsafe(path, 'backing file %r uses a protocol or json: prefix' % name,
                      reason='bad_backing', backing_file=name)
    if '/' in name:
        raise _unsafe(path, 'backing file %r is a path, only a bare file name in the same directory is allowed'
                      % name, reason='bad_backing', backing_file=name)
    if backing_format is None:
        raise _unsafe(path, 'backing file %r has no recorded backing format' % name,
                      reason='bad_backing', backing_file=name)
    if backing_format not in BACKING_FORMATS:
        raise _unsafe(path, 'backing format %r of backing file %r is not raw or qcow2' % (backing_format, name),
                      reason='bad_backing', backing_file=name, backing_format=backing_format)


def _check_qcow2(header, path, max_virtual_size, allow_backing, allow_encryption):
    incompat = header.incompatible_features
    if incompat & INCOMPAT_CORRUPT:
        raise _unsafe(path, 'qcow2 image is marked corrupt; repair it with qemu-img check -r first',
                      reason='corrupt')
    if incompat & INCOMPAT_DATA_FILE or header.data_file is not None:
        raise _unsafe(path, 'qcow2 image uses an external data file%s'
                      % ('' if header.data_file is None else ' (%r)' % header.data_file),
                      reason='data_file', data_file=header.data_file)
    unknown = incompat & ~INCOMPAT_KNOWN
    if unknown:
        raise _unsafe(path, 'unknown qcow2 incompatible feature bits 0x%x' % unknown, reason='unknown_feature')
    if header.crypt_method != CRYPT_NONE:
        if not allow_encryption:
            raise _unsafe(path, 'qcow2 image is encrypted (crypt_method %d)' % header.crypt_method,
                          reason='encrypted')
        if header.crypt_method not in (CRYPT_AES, CRYPT_LUKS):
            raise _unsafe(path, 'unknown qcow2 crypt_method %d' % header.crypt_method, reason='encrypted')
    if max_virtual_size is not None and header.size > max_virtual_size:
        raise _unsafe(path, 'virtual size %d is larger than the recorded size %d' % (header.size, max_virtual_size),
                      reason='too_large', virtual_size=header.size)
    name = header.backing_file
    if name is not None:
        if not allow_backing:
            raise _unsafe(path, 'qcow2 image has a backing file %r and none is allowed here' % name,
                          reason='bad_backing', backing_file=name)
        _check_backing_name(path, name, header.backing_format)
        if callable(allow_backing) and not allow_backing(name):
            raise _unsafe(path, 'backing file %r is not allowed (not part of this volume\'s chain)' % name,
                          reason='bad_backing', backing_file=name)


def check_image(path, expected_format, max_virtual_size=None, allow_backing=None, allow_encryption=False):
    """Check an image before qemu-img touches it.

    raw: nothing to check (never probed: raw is data); returns None.
    qcow2: parse and refuse corrupt, external-data-file, unknown-feature,
    encrypted (unless allow_encryption), oversized (max_virtual_size) images
    and any backing file unless allow_backing allows it. allow_backing: None or
    False = no backing file; a callable(name) -> bool decides after the
    structural checks (bare name, no protocol prefix, format raw/qcow2); True =
    structural checks only. Returns the Qcow2Header.
    """
    if expected_format == 'raw':
        # a raw image is data: whatever a guest wrote into it (a qcow2
        # header included) is never interpreted
        return None
    if expected_format != 'qcow2':
        raise _unsafe(path, 'image format %r is not supported (raw or qcow2)' % (expected_format,),
                      reason='bad_format')
    header = read_header(path)
    _check_qcow2(header, path, max_virtual_size, allow_backing, allow_encryption)
    return header


def _open_backing(parent, path, directory):
    """Open a backing file: a regular file, not a link, present in directory."""
    name = os.path.basename(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, 'O_CLOEXEC', 0) | getattr(os, 'O_NONBLOCK', 0)
                     | getattr(os, 'O_NOFOLLOW', 0))
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise _unsafe(parent, 'backing file %r is missing from %s' % (name, directory),
                          reason='missing_backing', backing_file=name)
        if os.path.islink(path):
            raise _unsafe(parent, 'backing file %r is a symbolic link' % name, reason='bad_backing', backing_file=name)
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise _unsafe(parent, 'backing file %r is not a regular file' % name, reason='bad_backing', backing_file=name)
    return fd, st


def walk_chain(path, name_pattern, expected_top_format='qcow2', max_depth=256, max_virtual_size=None):
    """List and check the backing chain of path, top (active) file first.

    Every backing file must be a bare name that fully matches name_pattern
    (or an absolute path whose directory is the directory of path and whose
    name matches: older Cinder wrote those), be a regular file with one link
    (not a symlink) in the directory of path, and pass check_image for the
    format its parent records. A raw file ends the chain. Loops, chains
    longer than max_depth files and missing files are refused. ChainEntry
    backing_file is always the bare name.
    """
    path = os.path.abspath(path)
    directory = os.path.dirname(path)
    real_dir = os.path.realpath(directory)
    entries = []
    seen = set()
    current, fmt = path, expected_top_format
    name = os.path.basename(path)

    def allow(name):
        # existence, type and links are checked when the file is opened
        # (O_NOFOLLOW + fstat): one system call fewer per file
        if not name_pattern.fullmatch(name):
            raise _unsafe(current, 'backing file %r does not match the naming of this volume\'s chain' % name,
                          reason='bad_backing', backing_file=name)
        return True

    parent = None
    while True:
        if len(entries) >= max_depth:
            raise _unsafe(path, 'the backing chain is deeper than %d files' % max_depth, reason='too_deep')
        if fmt not in ('raw', 'qcow2'):
            raise _unsafe(current, 'image format %r is not supported (raw or qcow2)' % (fmt,), reason='bad_format')
        if parent is None:
            fd, st = _open(current, nofollow=True)
        else:
            fd, st = _open_backing(parent, current, directory)
        try:
            # Same (device, inode) = same file, whatever the name (also catches hard links).
            key = (st.st_dev, st.st_ino)
            if key in seen:
                raise _unsafe(path, 'the backing chain loops back to %s' % current, reason='loop', loop_at=current)
            seen.add(key)
            apparent = st.st_size
            if stat.S_ISBLK(st.st_mode):
                apparent = os.lseek(fd, 0, os.SEEK_END)
            if st.st_nlink > 1:
                raise _unsafe(current, 'it has %d hard links: another name of it may be outside the volume '
                              'directory' % st.st_nlink, reason='hard_link')
            if fmt == 'raw':
                header = None   # raw is data: never probed
            else:
                header = _parse(fd, current)
        finally:
            os.close(fd)
        allocated = st.st_blocks * 512
        if header is None:
            entries.append(ChainEntry(file=name, path=current, format='raw',
                                      backing_file=None, backing_format=None, virtual_size=apparent,
                                      allocated=allocated, apparent=apparent))
            return entries
        backing = header.backing_file
        if backing is not None and backing.startswith('/') and os.path.dirname(backing) in (directory, real_dir):
            backing = header.backing_file = os.path.basename(backing)
        _check_qcow2(header, current, max_virtual_size, allow, False)
        entries.append(ChainEntry(file=name, path=current, format='qcow2',
                                  backing_file=backing, backing_format=header.backing_format,
                                  virtual_size=header.size, allocated=allocated, apparent=apparent))
        if header.backing_file is None:
            return entries
        parent = current
        current = directory + os.sep + header.backing_file
        name = header.backing_file
        fmt = header.backing_format
