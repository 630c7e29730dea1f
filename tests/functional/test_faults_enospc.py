# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ENOSPC at each step of every multi-step operation.

On a small tmpfs of its own, each operation's scenario is set up, then the
filesystem is filled (a filler file at the mount's root) so that only N
pages stay free, for growing N: with 0 pages the first write (the journal)
fails, with more the failure moves on to the temporary overlay, the copy,
the commit... until the operation succeeds; then a bisection finds the
least free space that succeeds, and the levels just below it make the last
bookkeeping steps (after the data is written) run out. Each failure must
be
- a StorageError whose message says what is wrong (no space), never an
  "Unexpected error ... This is a bug";
- clean: nothing half-made -- the directory is exactly as before (the
  source of a copy included: its .info and its files), except that an
  operation which had already merged data (a snapshot delete's commit) may
  leave its roll-forward journal, which volume_info then reports as pending;
and after the filler is removed, the same operation again converges: the
checks of the kill suite (every point in time, the exact .info, no stray
file) and a further run changes nothing."""

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
PAGE = 4096
LEVELS = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2100]


class Op(object):
    def __init__(self, name, func, params, setup, verify, present, may_leave_journal=False):
        self.name = name
        self.func = func
        self.params = params
        self.setup = setup
        self.verify = verify
        self.present = present
        self.may_leave_journal = may_leave_journal

    def __repr__(self):
        return self.name


def verify_created(directory, ctx):
    problems = []
    path = os.path.join(directory, 'volume-N')
    if sc.volume_files(directory, 'N') != sorted(['volume-N', 'volume-N.lock', 'volume-N.meta']):
        return ['files of N: %s' % sc.volume_files(directory, 'N')]
    if os.path.getsize(path) != 8 * sc.MIB or os.stat(path).st_blocks * 512 < 8 * sc.MIB:
        problems.append('volume-N is not a fully allocated 8 MiB file')
    return problems + sc.pattern_problems(path, 'raw', [(0, 0, 8 * sc.MIB)])


def verify_gone(directory, ctx):
    left = sorted(os.listdir(directory))
    return ['left after the delete: %s' % left] if left else []


OPS = [
    Op('create-thick', 'ensure_volume', lambda d, c: sc.vparams(d, 'N', size='8M', provisioning='thick'),
       lambda d, s: {}, verify_created, ['N']),
    Op('clone', 'ensure_volume', lambda d, c: sc.vparams(d, 'C', source_volume=V),
       fk.setup_chain(2), fk.verify_copy('C', lambda ctx: ctx['timeline'].now), [V, 'C']),
    Op('clone-plain', 'ensure_volume', lambda d, c: sc.vparams(d, 'C', source_volume=V),
       fk.setup_chain(0), fk.verify_copy('C', lambda ctx: ctx['timeline'].now), [V, 'C']),
    Op('from-snapshot', 'ensure_volume',
       lambda d, c: sc.vparams(d, 'F', source_volume=V, source_snapshot='s1', size='8M'),
       fk.setup_chain(2), fk.verify_copy('F', lambda ctx: ctx['points'][0][1], size=8 * sc.MIB), [V, 'F']),
    Op('from-image', 'ensure_volume',
       lambda d, c: sc.vparams(d, 'I', source_image=c['image'], source_image_format='raw', format='qcow2'),
       functools.partial(fk.setup_image, base_fmt='raw'), fk.verify_copy('I', lambda ctx: 2, fmt='qcow2', size=8 * sc.MIB, source=False), ['I']),
    Op('extend-thick', 'ensure_volume', lambda d, c: sc.vparams(d, V, size='8M', provisioning=None),
       fk.setup_chain(0, provisioning='thick'), fk.verify_chain([], size=8 * sc.MIB, thick=True), [V],
       may_leave_journal=True),
    Op('snapshot-create', 'ensure_snapshot', lambda d, c: sc.sparams(d, V, 's3'),
       fk.setup_chain(2), fk.verify_snapshot_created, [V]),
    Op('snapshot-delete-first', 'ensure_snapshot', lambda d, c: sc.sparams(d, V, 's1', 'absent'),
       fk.setup_chain(3), fk.verify_chain(['s2', 's3']), [V], may_leave_journal=True),
    Op('snapshot-delete-middle', 'ensure_snapshot', lambda d, c: sc.sparams(d, V, 's2', 'absent'),
       fk.setup_chain(3), fk.verify_chain(['s1', 's3']), [V], may_leave_journal=True),
    Op('snapshot-delete-latest', 'ensure_snapshot', lambda d, c: sc.sparams(d, V, 's3', 'absent'),
       fk.setup_chain(3), fk.verify_chain(['s1', 's2']), [V], may_leave_journal=True),
    Op('revert', 'ensure_snapshot', lambda d, c: sc.sparams(d, V, 's2', 'reverted'),
       fk.setup_chain(2), fk.verify_chain(['s1', 's2'], active_point=lambda ctx: ctx['points'][-1][1]), [V]),
    Op('delete-force', 'ensure_volume', lambda d, c: sc.vparams(d, V, state='absent', force=True),
       fk.setup_chain(2), verify_gone, [], may_leave_journal=True),
]


@pytest.fixture(scope='module')
def small_fs():
    with fk.filesystem('tmpfs', 40) as mnt:
        yield mnt


@pytest.fixture(scope='module')
def scratch():
    with fk.scratch_dir('blockyard-faults-enospc-') as path:
        yield path


def error_text(exc):
    details = getattr(exc, 'details', {}) or {}
    return ' '.join([getattr(exc, 'msg', str(exc))] + [str(details.get(k, '')) for k in ('stderr', 'stdout')])


def failure_problems(op, exc, directory, before):
    """What a failed attempt must satisfy."""
    problems = fk.storage_error_problems(exc, what=op.name)
    if not problems and 'space' not in error_text(exc).lower():
        problems.append('the error does not say that space ran out: %s' % error_text(exc))
    after = sc.fingerprint(directory)
    journals = [os.path.basename(p) for p in after if p.endswith('.journal')]
    if after != before:
        if op.may_leave_journal and journals:
            # a roll-forward: the volume must say so
            try:
                desc = sc.info_of(directory, V)
            except Exception as exc2:  # noqa: reported
                problems.append('volume_info fails after the ENOSPC: %s: %s' % (type(exc2).__name__, exc2))
            else:
                if not desc.get('pending_operation'):
                    problems.append('a journal (%s) was left but volume_info shows no pending_operation' % journals)
        else:
            changed = sorted(set(p for p in set(before) | set(after) if before.get(p) != after.get(p)))
            problems.append('the failed operation changed the directory: %s'
                            % ', '.join('%s (%s -> %s)' % (os.path.basename(p), before.get(p, 'absent')[:20],
                                                           after.get(p, 'absent')[:20]) for p in changed))
    return problems


def attempt(op, root, scratch, pages):
    """Set the scenario up, leave `pages` free, run the operation, check
    the failure (if any), free the space and check that the operation
    converges. Returns (succeeded, outcome, problems, directory)."""
    directory = os.path.join(root, op.name)
    filler = os.path.join(root, '.filler')
    for path in (directory, filler):
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.unlink(path)
    os.makedirs(directory)
    ctx = op.setup(directory, scratch)
    before = sc.fingerprint(directory)
    fk.fill(root, pages * PAGE)
    try:
        getattr(volumes, op.func)(op.params(directory, ctx), False)
    except Exception as exc:  # noqa: checked
        found = failure_problems(op, exc, directory, before)
        succeeded, outcome = False, '%s: %s' % (type(exc).__name__, getattr(exc, 'msg', exc))
    else:
        found, succeeded, outcome = [], True, 'succeeded'
    os.unlink(filler)
    # with space again, the same operation converges
    try:
        changed, result, _diff = getattr(volumes, op.func)(op.params(directory, ctx), False)
        found += op.verify(directory, ctx)
        changed, result, _diff = getattr(volumes, op.func)(op.params(directory, ctx), False)
        if changed:
            found.append('a further run still changes: %s' % result.get('actions'))
        found += ['stray files: %s' % s for s in [fk.strays(directory, op.present)] if s]
    except Exception as exc:  # noqa: reported
        found.append('the re-run with free space failed: %s: %s' % (type(exc).__name__, exc))
    return succeeded, outcome, ['%d pages free: %s' % (pages, p) for p in found], directory


@pytest.mark.parametrize('op', OPS, ids=[op.name for op in OPS])
def test_enospc_at_each_step(small_fs, scratch, op):
    """LEVELS up to the first success, then a bisection for the least free
    space that succeeds and the three levels just below it (where the
    data is written and only the last bookkeeping steps run out)."""
    root = small_fs.path
    log, problems, results = [], [], {}

    def one(pages):
        if pages not in results:
            succeeded, outcome, found, _directory = attempt(op, root, scratch, pages)
            results[pages] = succeeded
            log.append((pages, outcome))
            problems.extend(found)
        return results[pages]

    previous = None
    for pages in LEVELS:
        if one(pages):
            break
        previous = pages
    else:
        pages = None
    if pages is not None and previous is not None:
        low, high = previous, pages
        while high - low > 1:
            mid = (low + high) // 2
            if one(mid):
                high = mid
            else:
                low = mid
        for below in (high - 1, high - 2, high - 3):
            if below >= 0:
                one(below)
    log.sort()
    attempts = '\n'.join(compress(log, os.path.join(root, op.name)))
    print('%s:\n%s' % (op.name, attempts))
    assert pages is not None, 'the operation never succeeded with up to %d free pages:\n%s' % (LEVELS[-1], attempts)
    assert previous is not None, 'no level made the operation fail: ENOSPC was never exercised'
    assert not problems, '%d problem(s):\n%s\nattempts:\n%s' % (len(problems), '\n'.join(problems), attempts)


def compress(log, directory):
    """[(pages, outcome)] -> lines, consecutive equal outcomes merged,
    the directory left out of the messages."""
    lines, run = [], []
    for pages, text in log + [(None, None)]:
        text = text and text.replace(directory + '/', '')
        if run and text != run[0][1]:
            first, last = run[0][0], run[-1][0]
            lines.append('%s page(s) free: %s' % (first if first == last else '%d-%d' % (first, last), run[0][1]))
            run = []
        run.append((pages, text))
    return lines
