# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validation of names and sizes, and the file names of the Cinder layout."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

from ansible_collections.blockyard.storage.plugins.module_utils.errors import InvalidInput

NAME_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._-]*$')
MAX_NAME_LEN = 200

# Suffixes of files the collection keeps beside a volume; a snapshot may not
# take one of these names, or its overlay would be one of our sidecars.
SIDECARS = ('info', 'meta', 'lock', 'journal')
RESERVED_SNAPSHOT_NAMES = frozenset(SIDECARS)

GIB = 1024 ** 3
UNITS = {
    '': GIB, 'B': 1,
    'K': 1024, 'KB': 1024, 'KIB': 1024,
    'M': 1024 ** 2, 'MB': 1024 ** 2, 'MIB': 1024 ** 2,
    'G': GIB, 'GB': GIB, 'GIB': GIB,
    'T': 1024 ** 4, 'TB': 1024 ** 4, 'TIB': 1024 ** 4,
}
SIZE_RE = re.compile(r'^\s*(\d+)\s*([A-Za-z]*)\s*$')


def validate_name(name, what='volume'):
    """Return name if it is a safe object name, else raise InvalidInput."""
    if not isinstance(name, str) or name == '':
        raise InvalidInput('The %s name is empty: give a name matching %s.' % (what, NAME_RE.pattern))
    if '\x00' in name:
        raise InvalidInput('The %s name %r contains a NUL byte: names may hold only letters, digits, ".", "_" and "-".'
                           % (what, name))
    if len(name) > MAX_NAME_LEN:
        raise InvalidInput('The %s name %r... is %d characters long: the limit is %d.'
                           % (what, name[:40], len(name), MAX_NAME_LEN))
    if '/' in name or name in ('.', '..') or '..' in name:
        raise InvalidInput('The %s name %r contains a path separator or "..": names may hold only letters, '
                           'digits, ".", "_" and "-" and may not form a path.' % (what, name))
    if not NAME_RE.fullmatch(name):   # not match(): "$" also matches before a trailing newline
        raise InvalidInput('The %s name %r is invalid: it must start with a letter or digit and hold only '
                           'letters, digits, ".", "_" and "-" (%s).' % (what, name, NAME_RE.pattern))
    return name


def validate_snapshot_name(name):
    validate_name(name, 'snapshot')
    if name in RESERVED_SNAPSHOT_NAMES:
        raise InvalidInput('The snapshot name %r is reserved for the files the collection keeps beside a volume '
                           '(%s): choose another name.' % (name, ', '.join(SIDECARS)))
    return name


def parse_size(value, what='size'):
    """Parse an integer GiB or a string with a unit (M, G, T...) into bytes."""
    if isinstance(value, bool) or value is None:
        raise InvalidInput('The %s %r is not a size: give a positive integer of GiB or a string such as "512M", '
                           '"10G" or "1T".' % (what, value))
    if isinstance(value, int):
        number, unit = value, ''
    elif isinstance(value, float):
        if value != int(value):
            raise InvalidInput('The %s %r is not a whole number of GiB: give a string with a smaller unit such as '
                               '"%dM".' % (what, value, int(value * 1024)))
        number, unit = int(value), ''
    else:
        text = str(value)
        if text.strip().startswith('-'):
            raise InvalidInput('The %s %r is negative: sizes must be positive.' % (what, value))
        match = SIZE_RE.match(text)
        if not match:
            raise InvalidInput('The %s %r is not a size: give a positive integer of GiB or a number with a unit '
                               '(B, K, M, G, T), such as "512M" or "10G".' % (what, value))
        number, unit = int(match.group(1)), match.group(2).upper()
        if unit not in UNITS:
            raise InvalidInput('The %s %r has an unknown unit %r: use B, K, M, G or T (binary multiples).'
                               % (what, value, match.group(2)))
    if number < 0:
        raise InvalidInput('The %s %r is negative: sizes must be positive.' % (what, value))
    size = number * UNITS[unit]
    if size <= 0:
        raise InvalidInput('The %s %r is zero: sizes must be positive.' % (what, value))
    if size % 512:
        raise InvalidInput('The %s %r is not a multiple of 512 bytes: round it up to whole sectors.' % (what, value))
    return size


def human_size(size):
    for unit, factor in (('T', 1024 ** 4), ('G', GIB), ('M', 1024 ** 2), ('K', 1024)):
        if size >= factor and size % factor == 0:
            return '%d%s' % (size // factor, unit)
    return '%dB' % size


def volume_file(name):
    return 'volume-%s' % name


def sidecar_file(name, kind):
    return 'volume-%s.%s' % (name, kind)


def snapshot_file(volume, snapshot):
    return 'volume-%s.%s' % (volume, snapshot)


# File names are at most 255 bytes (NAME_MAX); the longest name made from an
# overlay is the temporary file of a revert, '.<overlay>.revert'.
MAX_FILE_NAME = 255
OVERLAY_EXTRA = len('..revert')


def check_snapshot_file(volume, snapshot):
    """The overlay file name of a snapshot, refused before anything is
    written when it (or a temporary file named after it) would be too long."""
    filename = snapshot_file(volume, snapshot)
    if len(filename.encode('utf-8')) + OVERLAY_EXTRA > MAX_FILE_NAME:
        room = MAX_FILE_NAME - OVERLAY_EXTRA - len(snapshot_file(volume, '').encode('utf-8'))
        raise InvalidInput('Snapshot %s... of volume %s... would be stored in a file name of %d bytes, longer than the '
                           'file system allows: with this volume name a snapshot name may have at most %d characters.'
                           % (snapshot[:40], volume[:40], len(filename.encode('utf-8')), max(room, 0)))
    return filename


def chain_pattern(volume):
    """Regex that every file of a volume's qcow2 chain must fully match."""
    # \Z, not $: "$" also matches before a trailing newline, and callers use match()
    return re.compile(r'^volume-%s(\.(?!(?:%s)\Z)[A-Za-z0-9][A-Za-z0-9._-]*)?\Z'
                      % (re.escape(volume), '|'.join(SIDECARS)))
