# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Figures thick_create_vs_dd and thick_create_zeros_vs_dd: a thick raw
volume made by the core (ensure_volume, provisioning thick) vs
`dd if=/dev/zero oflag=direct` of the same size on the same filesystem.

The core takes fallocate(2) where fileio.ZERO_FALLOCATE_FS lists the
filesystem and writes zeros elsewhere. The second (informational) figure
forces the written-zeros path on the same filesystem by emptying
ZERO_FALLOCATE_FS for the call, so that the slow path is measured against the
same dd samples."""

import os

from lib import GiB, MiB, core, drop_dirty, figure, fs_type, log, run, timed


def thick_create_vs_dd(ctx):
    volumes, fileio = core()
    size = 256 * MiB if ctx.quick else 2 * GiB
    reps = 1 if ctx.quick else 3
    vol_dir = ctx.scratch('thick')
    loc = {'volume_dir': vol_dir, 'mode': '0660'}
    fstype = fileio.fs_type(vol_dir)
    path_taken = 'fallocate' if fstype in fileio.ZERO_FALLOCATE_FS else 'written zeros'
    dd_file = os.path.join(vol_dir, 'dd.img')
    dd_argv = ['dd', 'if=/dev/zero', 'of=%s' % dd_file, 'bs=4M', 'count=%d' % (size // (4 * MiB)), 'oflag=direct']

    def ours(name, zeros):
        params = dict(loc, name=name, size='%dM' % (size // MiB), provisioning='thick')
        saved = fileio.ZERO_FALLOCATE_FS
        if zeros:
            fileio.ZERO_FALLOCATE_FS = frozenset()
        try:
            seconds, (changed, _result, _diff) = timed(volumes.ensure_volume, params, False)
        finally:
            fileio.ZERO_FALLOCATE_FS = saved
        st = os.stat(os.path.join(vol_dir, 'volume-%s' % name))
        if not changed or st.st_size != size or st.st_blocks * 512 < size:
            raise RuntimeError('volume %s: changed=%s, size %d, allocated %d; expected %d fully allocated'
                               % (name, changed, st.st_size, st.st_blocks * 512, size))
        volumes.ensure_volume(dict(loc, name=name, state='absent'), False)
        return seconds

    samples = {'dd': [], 'fallocate': [], 'zeros': []}
    steps = ['dd', 'fallocate', 'zeros']
    for rep in range(reps):
        for step in steps[rep % 3:] + steps[:rep % 3]:
            drop_dirty()
            if step == 'dd':
                seconds = timed(run, dd_argv)[0]
                os.unlink(dd_file)
            else:
                seconds = ours('thick%d%s' % (rep, step), step == 'zeros')
            samples[step].append(seconds)
            log('rep %d: %s %.3f s' % (rep + 1, step, seconds))
    drop_dirty()
    human = '%d MiB' % (size // MiB) if size < GiB else '%d GiB' % (size // GiB)
    common = dict(size_bytes=size, filesystem=fstype, scratch_fs=fs_type(vol_dir), repetitions=reps,
                  zero_fallocate_fs=sorted(fileio.ZERO_FALLOCATE_FS))
    return [
        figure('thick_create_vs_dd',
               'thick create of a %s raw volume (core) vs dd oflag=direct, throughput ratio' % human,
               ' '.join(dd_argv[:1] + dd_argv[1:2] + ['of=X'] + dd_argv[3:]),
               'volumes.ensure_volume(provisioning=thick) on %s: %s path' % (fstype, path_taken),
               samples['dd'], samples[path_taken == 'fallocate' and 'fallocate' or 'zeros'],
               'baseline/ours', '>=', 0.9, path_taken=path_taken, **common),
        figure('thick_create_zeros_vs_dd',
               'thick create of a %s raw volume, written-zeros path forced (core) vs dd oflag=direct' % human,
               'dd if=/dev/zero of=X bs=4M oflag=direct (same samples as thick_create_vs_dd)',
               'volumes.ensure_volume(provisioning=thick) with ZERO_FALLOCATE_FS emptied: written zeros, '
               'buffered 4 MiB writes + fsync',
               samples['dd'], samples['zeros'], 'baseline/ours', '>=', 0.9, informational=True,
               path_taken='written zeros', **common),
    ]
