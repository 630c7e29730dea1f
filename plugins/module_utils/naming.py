# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validation of names, sizes and modes: the rules every backend shares."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

from ansible_collections.blockyard.storage.plugins.module_utils.errors import InvalidInput

# No dot: in the file layout the dot separates volume, snapshot and sidecar
# (volume-<name>.<snapshot>, volume-<name>.info), so a name with a dot could
# be another volume's file. Without one, every file name has one owner.
NAME_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_-]*$')
NAME_CHARS = 'letters, digits, "_" and "-" (no dots)'
MAX_NAME_LEN = 200
MAX_SIZE = 2 ** 63 - 1
# Cinder's own ids: its code parses backing names as volume-<id>(.(tmp-snap-)?[0-9a-f-]+)?
UUID_RE = re.compile(r'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$')


GIB = 1024 ** 3
UNITS = {
    '': GIB, 'B': 1,
    'K': 1024, 'KB': 1024, 'KIB': 1024,
    'M': 1024 ** 2, 'MB': 1024 ** 2, 'MIB': 1024 ** 2,
    'G': GIB, 'GB': GIB, 'GIB': GIB,
    'T': 1024 ** 4, 'TB': 1024 ** 4, 'TIB': 1024 ** 4,
}
SIZE_RE = re.compile(r'^\s*(\d+)\s*([A-Za-z]*)\s*$')


def validate_name(name, what='volume', cinder=False):
    """Return name if it is a safe object name, else raise InvalidInput.
    cinder: the name must be a lowercase UUID, as Cinder's ids are."""
    if not isinstance(name, str) or name == '':
        raise InvalidInput('The %s name is empty: give a name of %s.' % (what, NAME_CHARS))
    if '\x00' in name:
        raise InvalidInput('The %s name %r contains a NUL byte: names may hold only %s.' % (what, name, NAME_CHARS))
    if len(name) > MAX_NAME_LEN:
        raise InvalidInput('The %s name %r... is %d characters long: the limit is %d.'
                           % (what, name[:40], len(name), MAX_NAME_LEN))
    if '/' in name or '.' in name:
        raise InvalidInput('The %s name %r contains "/" or ".": names may hold only %s, because a dot separates '
                           'volume, snapshot and bookkeeping parts of a file name (volume-<volume>.<snapshot>) '
                           'and a name with one could be another volume\'s file.' % (what, name, NAME_CHARS))
    if not NAME_RE.fullmatch(name):   # not match(): "$" also matches before a trailing newline
        raise InvalidInput('The %s name %r is invalid: it must start with a letter or digit and hold only %s.'
                           % (what, name, NAME_CHARS))
    if cinder and not UUID_RE.fullmatch(name):
        raise InvalidInput('The %s name %r is not a lowercase UUID: with cinder_compatible_names=true names must '
                           'be UUIDs such as 6f1c2a8e-0b7d-4c55-9a43-2d1e8f0c9b71, because Cinder parses backing '
                           'file names with volume-<id>(.(tmp-snap-)?[0-9a-f-]+)? and breaks on others.'
                           % (what, name))
    return name


def validate_snapshot_name(name, cinder=False, reserved=()):
    """reserved: names a backend keeps for itself (the file backend's
    sidecars and .info keys)."""
    validate_name(name, 'snapshot', cinder)
    if name in reserved:
        raise InvalidInput('The snapshot name %r is reserved (%s: the files the collection keeps beside a volume '
                           'and the keys of its .info map): choose another name.'
                           % (name, ', '.join(sorted(reserved))))
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
    if size > MAX_SIZE:
        raise InvalidInput('The %s %r is %d bytes, above the largest file size (2^63 - 1 bytes).'
                           % (what, value, size))
    if size % 512:
        raise InvalidInput('The %s %r is not a multiple of 512 bytes: round it up to whole sectors.' % (what, value))
    return size


def human_size(size):
    for unit, factor in (('T', 1024 ** 4), ('G', GIB), ('M', 1024 ** 2), ('K', 1024)):
        if size >= factor and size % factor == 0:
            return '%d%s' % (size // factor, unit)
    return '%dB' % size


def parse_mode(value):
    """A file mode given as a string of octal digits ('0660'), or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str):
        raise InvalidInput('mode %r is not an octal string: quote it, e.g. mode: "0660" (an unquoted 0660 or 660 '
                           'is read by YAML as a different number).' % (value,))
    text = value.strip()
    if not re.fullmatch(r'0?[0-7]{1,4}', text) or int(text, 8) > 0o7777:
        raise InvalidInput('mode %r is not a file mode: give at most four octal digits, such as "0660" or "0640".'
                           % (value,))
    return int(text, 8)
