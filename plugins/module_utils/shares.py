# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shares (NFS exports, GlusterFS volumes): validation, Cinder-style shares
files, the os-brick mount point convention, mount state and capacity."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import hashlib
import os
import re
import shlex

from ansible_collections.blockyard.storage.plugins.module_utils.errors import InvalidInput, StorageError

DEFAULT_MOUNT_POINT_BASE = '/var/lib/blockyard/mnt'
SHARE_RE = re.compile(r'^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?):(?P<path>/[^\s\x00]*)$')


class ShareLine:
    """One share of a shares file (or of a list): share string and options."""

    def __init__(self, share, options=None, lineno=None):
        self.share = share
        self.options = options
        self.lineno = lineno

    def __repr__(self):
        return 'ShareLine(%r, %r, %r)' % (self.share, self.options, self.lineno)

    def __eq__(self, other):
        return isinstance(other, ShareLine) and (self.share, self.options) == (other.share, other.options)


def validate_share(share):
    """Return share if it reads host:/path, else raise InvalidInput."""
    if not isinstance(share, str) or not SHARE_RE.match(share) or '/../' in share + '/' \
            or share.rstrip('/').endswith('/..'):
        raise InvalidInput('The share %r is invalid: write it as host:/path (NFS export or GlusterFS volume), '
                           'e.g. 192.0.2.10:/srv/cinder or gluster1:/volumes.' % (share,))
    return share


def mount_point(base, share):
    """<base>/<md5 hex of the share string>: the os-brick convention."""
    if not os.path.isabs(base):
        raise InvalidInput('mount_point_base %r must be an absolute path.' % base)
    return os.path.join(base, hashlib.md5(share.encode('utf-8')).hexdigest())


def parse_shares_text(text):
    """Parse a shares file. Returns (shares, errors): ShareLine list in file
    order without duplicates, and (lineno, line, reason) for invalid lines."""
    shares, errors, seen = [], [], {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith('#'):
            continue
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            errors.append((lineno, raw, 'cannot be split into words: %s' % exc))
            continue
        if not words:
            continue
        share, rest = words[0], words[1:]
        options = None
        if rest:
            if rest[0] != '-o' or len(rest) != 2:
                errors.append((lineno, raw, 'expected "host:/path" optionally followed by "-o options"'))
                continue
            options = rest[1]
        try:
            validate_share(share)
        except InvalidInput:
            errors.append((lineno, raw, 'share %r is not host:/path' % share))
            continue
        if share in seen:
            previous = seen[share]
            if previous.options != options:
                errors.append((lineno, raw, 'share %s is listed again with other options (first on line %d)'
                               % (share, previous.lineno)))
            continue
        entry = ShareLine(share, options, lineno)
        seen[share] = entry
        shares.append(entry)
    return shares, errors


def read_shares_config(path):
    """Read and parse a shares file; invalid lines are an error naming them."""
    try:
        with open(path) as handle:
            text = handle.read()
    except IOError as exc:
        raise InvalidInput('Cannot read shares_config %s: %s.' % (path, exc.strerror), path=path)
    shares, errors = parse_shares_text(text)
    if errors:
        raise InvalidInput('shares_config %s has invalid lines: %s. Fix them; no share was touched.'
                           % (path, '; '.join('line %d (%s): %s' % (n, line.strip(), why)
                                              for n, line, why in errors)),
                           path=path, invalid_lines=[{'line': n, 'text': line, 'reason': why}
                                                     for n, line, why in errors])
    return shares


def mounts():
    """{mount_point: (source, fstype, options)} from /proc/self/mountinfo."""
    result = {}
    with open('/proc/self/mountinfo') as handle:
        for line in handle:
            left, _sep, right = line.partition(' - ')
            fields = left.split()
            tail = right.split()
            if len(fields) < 6 or len(tail) < 2:
                continue
            point = fields[4].replace('\\040', ' ').replace('\\011', '\t').replace('\\134', '\\')
            result[point] = (tail[1], tail[0], fields[5] + (',' + tail[2] if len(tail) > 2 else ''))
    return result


def mounted_source(path):
    """The source mounted at path (exactly), or None."""
    entry = mounts().get(os.path.realpath(path)) or mounts().get(path)
    return entry[0] if entry else None


def is_stale(path):
    """True when the mount at path no longer answers (ESTALE, ENOTCONN...)."""
    try:
        os.statvfs(path)
        os.listdir(path)
        return False
    except OSError as exc:
        if exc.errno in (errno.ESTALE, errno.ENOTCONN, errno.EIO, errno.EHOSTDOWN):
            return True
        raise


def capacity(path):
    """total, free (available to non-root) and used bytes of a mounted share."""
    try:
        st = os.statvfs(path)
    except OSError as exc:
        raise StorageError('Cannot read the capacity of %s: %s. Check the mount (stale? server down?).'
                           % (path, exc.strerror), path=path)
    total = st.f_frsize * st.f_blocks
    return {'total_bytes': total, 'free_bytes': st.f_frsize * st.f_bavail,
            'used_bytes': total - st.f_frsize * st.f_bfree}


def require_mounted(base, share):
    """The mount point of share, checked to be a live mount of it."""
    validate_share(share)
    point = mount_point(base, share)
    source = mounted_source(point)
    if source is None:
        raise InvalidInput('Share %s is not mounted at %s: mount it first (blockyard.storage.share_mount or the '
                           'share_mounts role), with the same mount_point_base.' % (share, point), path=point)
    if is_stale(point):
        raise StorageError('Share %s at %s is a stale mount (the server does not answer): remount it with '
                           'blockyard.storage.share_mount.' % (share, point), path=point)
    return point
