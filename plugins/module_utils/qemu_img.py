# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A safe qemu-img: always an explicit format (-f), absolute paths,
--output=json where it reports, -U where the image may be in use, and CPU /
address-space limits so that a hostile image cannot exhaust the host."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os

from ansible_collections.blockyard.storage.plugins.module_utils.errors import StorageError, InvalidInput
from ansible_collections.blockyard.storage.plugins.module_utils import runner

QEMU_IMG = 'qemu-img'
FORMATS = ('raw', 'qcow2')
# Limits for commands that parse image metadata (cf. Cinder's info limits).
INFO_CPU_SECONDS = 30
INFO_ADDRESS_SPACE = 1024 ** 3
# Data-moving commands get a looser address-space bound but no CPU bound.
COPY_ADDRESS_SPACE = 4 * 1024 ** 3


def _path(path):
    if not os.path.isabs(path):
        raise InvalidInput('qemu-img is only run on absolute paths; got %r.' % path)
    return path


def _source(ref):
    """(format, filename) of a DataRef: a file or block device by absolute
    path; an RBD image as qemu's rbd: filename with its connection."""
    if ref.kind in ('file', 'block'):
        return _fmt(ref.format), _path(ref.path)
    spec = 'rbd:%s/%s%s' % (ref.pool, ref.namespace + '/' if ref.namespace else '', ref.image)
    if ref.snapshot:
        spec += '@%s' % ref.snapshot
    for key, option in (('conf', 'conf'), ('user', 'id'), ('keyring', 'keyring')):
        if ref.cluster.get(key):
            spec += ':%s=%s' % (option, ref.cluster[key])
    return _fmt(ref.format), spec


def _fmt(fmt):
    if fmt not in FORMATS:
        raise InvalidInput('Image format %r is not supported: use raw or qcow2.' % fmt)
    return fmt


def _run(args, what, limits='copy', **kwargs):
    if limits == 'info':
        kwargs.setdefault('cpu_seconds', INFO_CPU_SECONDS)
        kwargs.setdefault('address_space', INFO_ADDRESS_SPACE)
    else:
        kwargs.setdefault('address_space', COPY_ADDRESS_SPACE)
    return runner.run([QEMU_IMG] + args, what=what, **kwargs)


def info(path, fmt, force_share=True):
    args = ['info', '-f', _fmt(fmt), '--output=json']
    if force_share:
        args.append('-U')
    result = _run(args + [_path(path)], 'Reading image %s' % path, limits='info')
    try:
        return json.loads(result.stdout)
    except ValueError:
        raise StorageError('qemu-img info printed no JSON for %s.' % path, stdout=result.stdout)


def create(path, fmt, size=None, backing=None, backing_fmt=None, preallocation=None):
    """Create an image. backing is stored as given (callers pass a basename)."""
    args = ['create', '-q', '-f', _fmt(fmt)]
    options = []
    if fmt == 'qcow2':
        options.append('compat=1.1')
    if preallocation:
        options.append('preallocation=%s' % preallocation)
    if options:
        args += ['-o', ','.join(options)]
    if backing:
        if '/' in backing:
            raise InvalidInput('Backing file %r must be a basename in the same directory.' % backing)
        args += ['-b', backing, '-F', _fmt(backing_fmt)]
    args.append(_path(path))
    if size is not None:
        args.append(str(int(size)))
    _run(args, 'Creating %s image %s' % (fmt, path))


def convert(src, dst, dst_fmt, preallocation=None, sparse=True):
    """Copy the data of src (a model.DataRef) into the file dst."""
    src_fmt, src_name = _source(src)
    args = ['convert', '-q', '-f', src_fmt, '-O', _fmt(dst_fmt)]
    if dst_fmt == 'qcow2':
        args += ['-o', 'compat=1.1' + (',preallocation=%s' % preallocation if preallocation else '')]
    if not sparse:
        args += ['-S', '0']
    args += [src_name, _path(dst)]
    _run(args, 'Copying %s into %s' % (src.describe(), dst))


def convert_to(src, dst, target_is_zero=True):
    """Copy the guest data of src into the existing raw target dst (both
    model.DataRef: an RBD image or an LV made for the copy). target_is_zero:
    dst reads as zeros (a new RBD image, a new thin LV), so zeros are not
    written; else every byte is (a thick LV holding what its extents held)."""
    src_fmt, src_name = _source(src)
    dst_fmt, dst_name = _source(dst)
    zero = ['--target-is-zero'] if target_is_zero else []
    _run(['convert', '-q', '-n'] + zero + ['-f', src_fmt, '-O', dst_fmt, src_name, dst_name],
         'Copying %s into %s' % (src.describe(), dst.describe()))


def resize(path, fmt, size):
    _run(['resize', '-q', '-f', _fmt(fmt), _path(path), str(int(size))], 'Resizing %s' % path)


def commit(path, fmt='qcow2'):
    """Commit an overlay into its backing file; -d keeps the overlay as is
    (without -d qemu empties it, which aborts on GlusterFS FUSE)."""
    _run(['commit', '-q', '-d', '-f', _fmt(fmt), _path(path)], 'Committing %s into its backing file' % path)


def rebase_unsafe(path, backing, backing_fmt, fmt='qcow2'):
    """Re-point an overlay's backing file without copying data (-u)."""
    if '/' in backing:
        raise InvalidInput('Backing file %r must be a basename in the same directory.' % backing)
    _run(['rebase', '-q', '-u', '-f', _fmt(fmt), '-b', backing, '-F', _fmt(backing_fmt), _path(path)],
         'Re-pointing %s at %s' % (path, backing), limits='info')


def map_allocated(path, fmt):
    """Allocation map of the top layer only (depth 0 = data in this file)."""
    result = _run(['map', '-f', _fmt(fmt), '--output=json', '-U', _path(path)], 'Mapping %s' % path, limits='info')
    return json.loads(result.stdout)
