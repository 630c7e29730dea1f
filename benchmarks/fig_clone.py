# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Figure reflink_clone_vs_copy: a clone of a fully written raw volume via the
core (ensure_volume with source_volume: a reflink on XFS) vs a full copy
(`cp --reflink=never`) on the same XFS filesystem (a sparse image file,
mkfs.xfs -m reflink=1, loop-mounted). The loop device is unmounted and
detached in every case."""

import contextlib
import os
import time

from lib import GiB, MiB, core, drop_dirty, figure, log, run, timed


@contextlib.contextmanager
def xfs_mount(work, image_size):
    image = os.path.join(work, 'xfs.img')
    mnt = os.path.join(work, 'mnt')
    os.makedirs(mnt)
    with open(image, 'wb') as handle:
        handle.truncate(image_size)
    run(['mkfs.xfs', '-q', '-m', 'reflink=1', image])
    device = run(['losetup', '--find', '--show', image], universal_newlines=True).stdout.strip()
    mounted = False
    try:
        run(['mount', '-t', 'xfs', device, mnt])
        mounted = True
        yield mnt
    finally:
        if mounted:
            for _attempt in range(5):
                try:
                    run(['umount', mnt])
                    mounted = False
                    break
                except RuntimeError as exc:
                    log('umount %s: %s (retrying)' % (mnt, exc))
                    time.sleep(1)
            if mounted:
                run(['umount', '-l', mnt])
        try:
            run(['losetup', '-d', device])
        finally:
            os.unlink(image)


def _write_pattern(path, size):
    block = bytes([0x5a]) * (4 * MiB)
    fd = os.open(path, os.O_WRONLY)
    try:
        left = size
        while left > 0:
            view = memoryview(block)[:min(left, len(block))]
            while view:
                n = os.write(fd, view)
                view = view[n:]
                left -= n
        os.fsync(fd)
    finally:
        os.close(fd)


def _extents(path):
    """(extents, shared extents) of a file, from FIEMAP (filefrag -v)."""
    out = run(['filefrag', '-v', path], universal_newlines=True).stdout
    total = shared = 0
    for line in out.splitlines():
        fields = line.split(':')
        if len(fields) >= 4 and fields[0].strip().isdigit():
            total += 1
            if 'shared' in fields[-1]:
                shared += 1
    return total, shared


def reflink_clone_vs_copy(ctx):
    volumes, fileio = core()
    size = 256 * MiB if ctx.quick else 4 * GiB
    reps = 1 if ctx.quick else 3
    work = ctx.scratch('clone')
    with xfs_mount(work, 10 * GiB) as mnt:
        fstype = fileio.fs_type(mnt)
        loc = {'volume_dir': mnt, 'mode': '0660'}
        log('writing a %d MiB raw volume on %s (not timed)' % (size // MiB, fstype))
        volumes.ensure_volume(dict(loc, name='src', size='%dM' % (size // MiB)), False)
        src = os.path.join(mnt, 'volume-src')
        _write_pattern(src, size)
        samples = {'clone': [], 'copy': []}
        extents = {'clone': [], 'copy': []}
        for rep in range(reps):
            order = ('clone', 'copy') if rep % 2 == 0 else ('copy', 'clone')
            for side in order:
                drop_dirty()
                if side == 'clone':
                    name = 'clone%d' % rep
                    seconds, (changed, result, _d) = timed(
                        volumes.ensure_volume, dict(loc, name=name, source_volume='src'), False)
                    if not changed or not any('reflink' in a for a in result['actions']):
                        raise RuntimeError('the clone took no reflink: %s' % result['actions'])
                    dest = os.path.join(mnt, 'volume-%s' % name)
                else:
                    dest = os.path.join(mnt, 'copy%d' % rep)
                    seconds = timed(run, ['cp', '--reflink=never', src, dest])[0]
                drop_dirty()
                if os.path.getsize(dest) != size:
                    raise RuntimeError('%s is %d bytes, expected %d' % (dest, os.path.getsize(dest), size))
                total, shared = _extents(dest)
                if (side == 'clone') != (shared == total and total > 0) or (side == 'copy' and shared):
                    raise RuntimeError('%s: %d of %d extents shared: expected %s' % (
                        dest, shared, total, 'all (reflink)' if side == 'clone' else 'none (full copy)'))
                samples[side].append(seconds)
                extents[side].append([total, shared])
                log('rep %d: %s %.3f s (%d extents, %d shared)' % (rep + 1, side, seconds, total, shared))
                if side == 'clone':
                    volumes.ensure_volume(dict(loc, name=name, state='absent'), False)
                else:
                    os.unlink(dest)
    return [figure(
        'reflink_clone_vs_copy',
        'clone of a fully written %d MiB raw volume on XFS (reflink=1, loop): core vs full copy'
        % (size // MiB),
        'cp --reflink=never <src> <dst> (page cache, no fsync)',
        'volumes.ensure_volume(source_volume=src): FICLONE + fsync, bookkeeping',
        samples['copy'], samples['clone'], 'baseline/ours', '>=', 100,
        size_bytes=size, filesystem=fstype, repetitions=reps,
        extents_total_shared=extents)]
