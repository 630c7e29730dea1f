# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A power cut right after an operation reports success.

On a loop-mounted XFS and ext4 of their own, the scenario is set up and
synced (it is on stable storage), the operation runs and returns success,
and at once `xfs_io -x -c shutdown <mount point>` stops the filesystem
without flushing anything (what a power cut leaves on the disk); then the
filesystem is unmounted and mounted again (log replay). What the operation
reported done must have survived: a copy (clone, from snapshot, from image)
reads back its data, not zeros; after a snapshot create/delete or revert the
.info is whole and every file it names holds its data (each point in time
checked with patterns). qemu-img does not fsync: every step whose result the
bookkeeping names must be flushed before the bookkeeping names it."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import functools
import os
import shutil

import pytest

import faultkit as fk
import snapchain as sc
from ansible_collections.blockyard.storage.plugins.module_utils import volumes

V = fk.V


class Cut(object):
    def __init__(self, name, func, params, setup, verify, present):
        self.name = name
        self.func = func          # ensure_volume | ensure_snapshot
        self.params = params      # (directory, ctx) -> core params
        self.setup = setup        # (directory, scratch) -> ctx
        self.verify = verify      # (directory, ctx) -> [problems]
        self.present = present

    def __repr__(self):
        return self.name


CUTS = [
    Cut('clone', 'ensure_volume', lambda d, c: sc.vparams(d, 'C', source_volume=V),
        fk.setup_chain(2), fk.verify_copy('C', lambda ctx: ctx['timeline'].now), [V, 'C']),
    Cut('clone-plain-raw', 'ensure_volume', lambda d, c: sc.vparams(d, 'C', source_volume=V),
        fk.setup_chain(0), fk.verify_copy('C', lambda ctx: ctx['timeline'].now), [V, 'C']),
    Cut('clone-to-qcow2', 'ensure_volume', lambda d, c: sc.vparams(d, 'C', source_volume=V, format='qcow2'),
        fk.setup_chain(1), fk.verify_copy('C', lambda ctx: ctx['timeline'].now, fmt='qcow2'), [V, 'C']),
    Cut('from-snapshot', 'ensure_volume',
        lambda d, c: sc.vparams(d, 'F', source_volume=V, source_snapshot='s1', size='8M'),
        fk.setup_chain(2), fk.verify_copy('F', lambda ctx: ctx['points'][0][1], size=8 * sc.MIB), [V, 'F']),
    Cut('from-image', 'ensure_volume',
        lambda d, c: sc.vparams(d, 'I', source_image=c['image'], source_image_format='raw'),
        functools.partial(fk.setup_image, per_directory=True), fk.verify_copy('I', lambda ctx: 2, size=8 * sc.MIB, source=False), ['I']),
    Cut('from-image-qcow2', 'ensure_volume',
        lambda d, c: sc.vparams(d, 'I', source_image=c['image'], source_image_format='raw', format='qcow2'),
        functools.partial(fk.setup_image, per_directory=True), fk.verify_copy('I', lambda ctx: 2, fmt='qcow2', size=8 * sc.MIB, source=False), ['I']),
    Cut('snapshot-create', 'ensure_snapshot', lambda d, c: sc.sparams(d, V, 's3'),
        fk.setup_chain(2), fk.verify_snapshot_created, [V]),
    Cut('snapshot-delete-first', 'ensure_snapshot', lambda d, c: sc.sparams(d, V, 's1', 'absent'),
        fk.setup_chain(3), fk.verify_chain(['s2', 's3']), [V]),
    Cut('snapshot-delete-middle', 'ensure_snapshot', lambda d, c: sc.sparams(d, V, 's2', 'absent'),
        fk.setup_chain(3), fk.verify_chain(['s1', 's3']), [V]),
    Cut('snapshot-delete-latest', 'ensure_snapshot', lambda d, c: sc.sparams(d, V, 's3', 'absent'),
        fk.setup_chain(3), fk.verify_chain(['s1', 's2']), [V]),
    Cut('revert', 'ensure_snapshot', lambda d, c: sc.sparams(d, V, 's2', 'reverted'),
        fk.setup_chain(2), fk.verify_chain(['s1', 's2'], active_point=lambda ctx: ctx['points'][-1][1]), [V]),
    Cut('extend', 'ensure_volume', lambda d, c: sc.vparams(d, V, size='8M', provisioning=None),
        fk.setup_chain(0), fk.verify_chain([], size=8 * sc.MIB), [V]),
]


@pytest.fixture(scope='module', params=['xfs', 'ext4'])
def disk(request):
    size = 512 if request.param == 'xfs' else 128        # mkfs.xfs wants >= 300 MiB
    with fk.filesystem(request.param, size) as mnt:
        yield mnt


@pytest.mark.parametrize('cut', CUTS, ids=[c.name for c in CUTS])
def test_power_cut_after_success(disk, cut):
    directory = os.path.join(disk.path, cut.name)
    scratch = os.path.join(disk.path, 'images')
    for path in (directory, scratch):
        if os.path.exists(path):
            shutil.rmtree(path)
        os.makedirs(path)
    ctx = cut.setup(directory, scratch)
    disk.sync()                              # the scenario is on stable storage
    changed, result, _diff = getattr(volumes, cut.func)(cut.params(directory, ctx), False)
    assert changed, result
    disk.shutdown()                          # the power cut: nothing after this reaches the disk
    disk.remount()
    problems = []
    for vol in cut.present:
        problems += fk.info_problems(directory, vol)
    problems += ['stray files: %s' % s for s in [fk.strays(directory, cut.present)] if s]
    if not problems:
        try:
            problems += cut.verify(directory, ctx)
        except Exception as exc:  # noqa: reported with the others
            problems.append('checking after the power cut failed: %s: %s' % (type(exc).__name__, exc))
    assert not problems, '%s on %s, after a power cut right after success:\n%s' % (
        cut.name, disk.kind, '\n'.join(problems))
