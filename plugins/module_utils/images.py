# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Images that any backend copies in: the checks of an image file before
qemu-img reads it, and the copy of a DataRef into a file (flushed before
anyone records it)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

from ansible_collections.blockyard.storage.plugins.module_utils import fileio, qcow2, qemu_img
from ansible_collections.blockyard.storage.plugins.module_utils.errors import InvalidInput
from ansible_collections.blockyard.storage.plugins.module_utils.model import DataRef, Source


def check_source_image(path, fmt=None):
    """Check an image to copy in; returns its qcow2 header, or None for raw.
    fmt None: qcow2 when the file carries the qcow2 magic, raw otherwise.
    A qcow2 source may have no backing file or external data file at all."""
    if not os.path.isabs(path):
        raise InvalidInput('source_image %r must be an absolute path.' % path)
    if not os.path.isfile(path):
        raise InvalidInput('source_image %s does not exist or is not a regular file.' % path, path=path)
    if fmt is None:
        fmt = 'qcow2' if qcow2.is_qcow2(path) else 'raw'
    if fmt == 'raw':
        return None
    return qcow2.check_image(path, 'qcow2', allow_backing=None)


def image_source(path, fmt=None):
    """The Source of a copy from an image file."""
    header = check_source_image(path, fmt)
    fmt = 'qcow2' if header else 'raw'
    size = header.size if header else os.path.getsize(path)
    return Source(DataRef('file', fmt, size, path=path), size, 'image %s (%s)' % (path, fmt))


def copy(ref, dst_path, fmt, provisioning):
    """Copy the data of ref into the new file dst_path as fmt, then flush it:
    qemu-img does not fsync, and a power cut could otherwise leave a copy
    that its bookkeeping calls complete reading zeros."""
    fileio.unlink(dst_path)
    qemu_img.convert(ref, dst_path, fmt, preallocation='metadata' if fmt == 'qcow2' else None,
                     sparse=not (fmt == 'raw' and provisioning == 'thick'))
    fileio.fsync_file(dst_path)
