# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The file names of Cinder's NFS/GlusterFS layout, which the file backend
keeps: volume-<name>, volume-<name>.<snapshot>, volume-<name>.<sidecar>."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

from ansible_collections.blockyard.storage.plugins.module_utils.errors import InvalidInput

# Suffixes of files the collection keeps beside a volume; a snapshot may not
# take one of these names, or its overlay would be one of our sidecars.
SIDECARS = ('info', 'meta', 'lock', 'journal')
# "active" is the .info key of the active file; "part" names copies in flight
RESERVED_SNAPSHOT_NAMES = frozenset(SIDECARS + ('active', 'part'))


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
    return re.compile(r'^volume-%s(\.(?!(?:%s)\Z)[A-Za-z0-9][A-Za-z0-9_-]*)?\Z'
                      % (re.escape(volume), '|'.join(SIDECARS)))


def temporary_snapshot(source, dest):
    """The name of the temporary snapshot a clone of source into dest takes:
    tmp-snap-<dest> as Cinder names it, or a digest of dest where that would
    make a file name too long."""
    name = 'tmp-snap-%s' % dest
    try:
        check_snapshot_file(source, name)
        return name
    except InvalidInput:
        import hashlib
        return 'tmp-snap-%s' % hashlib.sha256(dest.encode('utf-8')).hexdigest()[:16]
