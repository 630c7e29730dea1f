# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Immutable files (`chattr +i`, on a loop-mounted ext4 of its own): the
.info, the .meta, the volume directory, the active overlay and a middle
overlay of a volume with two snapshots, against every operation.

Each operation either succeeds (when it does not need to change that file:
then its result is checked) or fails with a StorageError that names the
file (or the directory) and says why (EPERM: not permitted), never
"Unexpected error ... This is a bug"; the .info stays whole. After
`chattr -i` the same operation converges: the checks of the kill suite
(every point in time, the exact .info, no stray file), and a further run
changes nothing."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import shutil
import subprocess

import pytest

import faultkit as fk
import snapchain as sc
from ansible_collections.blockyard.storage.plugins.module_utils import volumes

V = fk.V

TARGETS = {
    'info': 'volume-V.info',
    'meta': 'volume-V.meta',
    'dir': '.',
    'active-overlay': 'volume-V.s2',
    'middle-overlay': 'volume-V.s1',
}


def verify_new(directory, ctx):
    files = sc.volume_files(directory, 'N')
    problems = [] if files == sorted(['volume-N', 'volume-N.lock', 'volume-N.meta']) else ['files of N: %s' % files]
    return problems + fk.verify_chain(['s1', 's2'])(directory, ctx)


def verify_gone(directory, ctx):
    left = sorted(os.listdir(directory))
    return ['left after the delete: %s' % left] if left else []


# name: (func, params, verify, volumes present afterwards)
OPS = {
    'snapshot-create': ('ensure_snapshot', lambda d: sc.sparams(d, V, 's3'), fk.verify_snapshot_created, [V]),
    'snapshot-delete-first': ('ensure_snapshot', lambda d: sc.sparams(d, V, 's1', 'absent'),
                              fk.verify_chain(['s2']), [V]),
    'snapshot-delete-latest': ('ensure_snapshot', lambda d: sc.sparams(d, V, 's2', 'absent'),
                               fk.verify_chain(['s1']), [V]),
    'revert': ('ensure_snapshot', lambda d: sc.sparams(d, V, 's2', 'reverted'),
               fk.verify_chain(['s1', 's2'], active_point=lambda ctx: ctx['points'][-1][1]), [V]),
    'extend': ('ensure_volume', lambda d: sc.vparams(d, V, size='8M', provisioning=None),
               fk.verify_chain(['s1', 's2'], size=8 * sc.MIB), [V]),
    'clone': ('ensure_volume', lambda d: sc.vparams(d, 'C', source_volume=V),
              fk.verify_copy('C', lambda ctx: ctx['timeline'].now), [V, 'C']),
    'create-other': ('ensure_volume', lambda d: sc.vparams(d, 'N', size='4M'), verify_new, [V, 'N']),
    'delete-force': ('ensure_volume', lambda d: sc.vparams(d, V, state='absent', force=True), verify_gone, []),
}

CASES = [(t, o) for t in sorted(TARGETS) for o in sorted(OPS)]


@pytest.fixture(scope='module')
def ext4():
    if not shutil.which('chattr'):
        pytest.fail('chattr is missing: install e2fsprogs', pytrace=False)
    with fk.filesystem('ext4', 128) as mnt:
        yield mnt


def chattr(flag, path):
    res = subprocess.run(['chattr', flag, path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         universal_newlines=True, check=False)
    assert res.returncode == 0, 'chattr %s %s: %s' % (flag, path, res.stdout)


def error_text(exc):
    details = getattr(exc, 'details', {}) or {}
    return ' '.join([getattr(exc, 'msg', str(exc))] + [str(details.get(k, '')) for k in ('stderr', 'path', 'file')])


@pytest.mark.parametrize('target,op_name', CASES, ids=['%s-%s' % c for c in CASES])
def test_immutable(ext4, target, op_name):
    func, params, verify, present = OPS[op_name]
    directory = os.path.join(ext4.path, '%s-%s' % (target, op_name))
    if os.path.exists(directory):
        fk.unimmutable(directory)
        shutil.rmtree(directory)
    os.makedirs(directory)
    ctx = fk.build(directory, V, snaps=2)
    path = os.path.normpath(os.path.join(directory, TARGETS[target]))
    names = [path] if target == 'dir' else [path, os.path.basename(path)]
    problems = []
    chattr('+i', path)
    try:
        try:
            getattr(volumes, func)(params(directory), False)
        except Exception as exc:  # noqa: checked
            outcome = '%s: %s' % (type(exc).__name__, error_text(exc))
            problems += fk.storage_error_problems(exc, names=names, what=op_name)
            text = error_text(exc).lower()
            if not any(w in text for w in ('not permitted', 'permission denied', 'immutable', 'read-only')):
                problems.append('the error does not say the file cannot be changed (EPERM): %s' % error_text(exc))
        else:
            outcome = 'succeeded'
            try:
                problems += ['succeeded with %s immutable, but: %s' % (target, p) for p in verify(directory, ctx)]
            except Exception as exc:  # noqa: reported
                problems.append('succeeded, but its result cannot be checked: %s: %s' % (type(exc).__name__, exc))
        problems += ['while immutable: %s' % p for p in fk.info_problems(directory, V)]
    finally:
        fk.unimmutable(directory)
    # converges once the file can be changed again
    try:
        getattr(volumes, func)(params(directory), False)
        problems += verify(directory, ctx)
        changed, result, _diff = getattr(volumes, func)(params(directory), False)
        if changed:
            problems.append('a further run still changes: %s' % result.get('actions'))
        problems += ['stray files: %s' % s for s in [fk.strays(directory, present)] if s]
    except Exception as exc:  # noqa: reported
        problems.append('after chattr -i the operation does not converge: %s: %s' % (type(exc).__name__, exc))
    assert not problems, '%s immutable, %s (%s):\n%s' % (target, op_name, outcome.replace(directory + '/', ''),
                                                         '\n'.join(problems))
