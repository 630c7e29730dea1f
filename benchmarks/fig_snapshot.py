# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Figure snapshot_delete_vs_bare_qemu: deleting the MIDDLE snapshot of a
3-file chain (base <- .s1 <- .s2) whose overlay .s1 holds data, via the
snapshot core, vs the two bare commands the core runs (`qemu-img commit -d`
then `qemu-img rebase -u`) on an identical copy of the files.

The template chain is made once; every repetition copies it (cp --reflink=auto)
into a fresh directory for each side, syncs, then times only the delete."""

import json
import os
import shutil
import time

from lib import GiB, MiB, core, drop_dirty, figure, log, median, run, timed

VOL = 'mid'


def _prepare(volumes, template, data):
    loc = {'volume_dir': template}
    volumes.ensure_volume(dict(loc, name=VOL, size='%dM' % (2 * data // MiB), mode='0660'), False)
    volumes.ensure_snapshot(dict(loc, volume=VOL, name='s1'), False)
    # the data of snapshot s2's point in time lands in .s1 (active until s2 exists)
    run(['qemu-io', '-f', 'qcow2', '-c', 'write -P 0x5a 0 %d' % data, os.path.join(template, 'volume-%s.s1' % VOL)])
    volumes.ensure_snapshot(dict(loc, volume=VOL, name='s2'), False)


def _copy(template, dest):
    run(['cp', '-a', '--reflink=auto', template, dest])


def _backing(path):
    info = json.loads(run(['qemu-img', 'info', '-U', '-f', 'qcow2', '--output=json', path],
                          universal_newlines=True).stdout)
    return info.get('backing-filename'), info.get('backing-filename-format')


def snapshot_delete_vs_bare_qemu(ctx):
    volumes, fileio = core()
    data = 64 * MiB if ctx.quick else GiB
    reps = 1 if ctx.quick else 5   # the commit's flush to disk is noisy on a shared machine
    work = ctx.scratch('snapdel')
    template = os.path.join(work, 'template')
    os.makedirs(template)
    log('preparing a 3-file chain with %d MiB in the middle overlay (not timed)' % (data // MiB))
    _prepare(volumes, template, data)
    base, s1, s2 = 'volume-%s' % VOL, 'volume-%s.s1' % VOL, 'volume-%s.s2' % VOL

    def ours(directory):
        # time spent removing files (the committed overlay), which the bare
        # commands leave behind: recorded, not subtracted
        spent = [0.0]
        unlink = fileio.unlink

        def timed_unlink(path):
            start = time.perf_counter()
            try:
                return unlink(path)
            finally:
                spent[0] += time.perf_counter() - start
        fileio.unlink = timed_unlink
        try:
            seconds, (changed, result, _diff) = timed(
                volumes.ensure_snapshot, {'volume_dir': directory, 'volume': VOL, 'name': 's1', 'state': 'absent'},
                False)
        finally:
            fileio.unlink = unlink
        if not changed:
            raise RuntimeError('snapshot delete reported no change: %s' % result)
        removal['ours'].append(round(spent[0], 4))
        return seconds

    def bare(directory):
        def both():
            run(['qemu-img', 'commit', '-q', '-d', '-f', 'qcow2', os.path.join(directory, s1)])
            run(['qemu-img', 'rebase', '-q', '-u', '-f', 'qcow2', '-b', base, '-F', 'raw',
                 os.path.join(directory, s2)])
        seconds = timed(both)[0]
        removal['bare_rm'].append(round(timed(os.unlink, os.path.join(directory, s1))[0], 4))
        return seconds

    samples = {'ours': [], 'bare': []}
    removal = {'ours': [], 'bare_rm': []}
    for rep in range(reps):
        order = ('ours', 'bare') if rep % 2 == 0 else ('bare', 'ours')
        dirs = {}
        for side in order:
            dirs[side] = os.path.join(work, '%s-%d' % (side, rep))
            _copy(template, dirs[side])
        drop_dirty()
        for side in order:
            seconds = ours(dirs[side]) if side == 'ours' else bare(dirs[side])
            samples[side].append(seconds)
            log('rep %d: %s %.3f s' % (rep + 1, side, seconds))
            drop_dirty()
        # both sides end the same: .s2 backed by the base, s1's data in the base
        for side, directory in dirs.items():
            backing = _backing(os.path.join(directory, s2))
            if backing != (base, 'raw'):
                raise RuntimeError('%s: %s is backed by %s, expected %s (raw)' % (side, s2, backing, base))
        with open(os.path.join(dirs['ours'], 'volume-%s.info' % VOL)) as handle:
            info = json.load(handle)
        if info != {'active': s2, 's2': s2} or os.path.exists(os.path.join(dirs['ours'], s1)):
            raise RuntimeError('after the delete the map is %s' % info)
        for directory in dirs.values():
            shutil.rmtree(directory)
    with_rm = [b + r for b, r in zip(samples['bare'], removal['bare_rm'])]
    notes = ['ours includes removing the committed overlay (%s s median, page-cache teardown and extent freeing '
             'of %d MiB), which the bare commands leave on disk; bare + rm of the overlay: %.3f s median'
             % (median(removal['ours']), data // MiB, median(with_rm))]
    return [figure(
        'snapshot_delete_vs_bare_qemu',
        'delete the middle snapshot of a 3-file chain, %d MiB to commit: core vs bare qemu-img'
        % (data // MiB),
        'qemu-img commit -d -f qcow2 <.s1> + qemu-img rebase -u -f qcow2 -b <base> -F raw <.s2>',
        'volumes.ensure_snapshot(state=absent) of the middle snapshot',
        samples['bare'], samples['ours'], 'ours/baseline', '<=', 1.1,
        data_bytes=data, repetitions=reps, notes=notes,
        overlay_removal_s={'ours_unlink': removal['ours'], 'bare_rm_after_timing': removal['bare_rm']},
        baseline_plus_rm_s=round(median(with_rm), 6),
        ratio_vs_baseline_plus_rm=round(median(samples['ours']) / median(with_rm), 4),
        cache='as prepared: the copies are in the page cache (written back with sync before timing)',
        order='interleaved, alternating; fresh copies per repetition')]
