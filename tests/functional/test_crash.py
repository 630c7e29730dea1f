# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Crash safety: every multi-step operation is killed (SIGKILL, in a real
child process, through BLOCKYARD_FAULT_POINT) at each of its checkpoints --
every plan step `<plan>.<i>` and every named checkpoint of the file backend
(the modules of its package, found through the registry), each hit of a checkpoint reached several times -- and then:

- the kill really happened (rc -9);
- the state left is sane: the .info (if any) is whole, in Cinder's exact
  format, and names only existing files of the volume; the volume loads, or
  its journal says what to complete;
- path A: re-running the same task completes it: the expected .info, every
  snapshot's data and the live data (patterns), no journal, no stray file;
  a further run reports no change;
- path B: a different task on the volume (which only recovers) leaves a
  clean volume: no journal, nothing but the files its .info names.

The checkpoints are discovered by running each operation once in-process
with runner.checkpoint wrapped; a coverage test checks that together the
operations reach every named checkpoint of the file backend and every plan."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import contextlib
import os
import re
import shutil
import signal
import tempfile

import pytest

import faultkit as fk
import snapchain as sc
from ansible_collections.blockyard.storage.plugins.module_utils import backends, fileio, qcow2, volumes
from ansible_collections.blockyard.storage.plugins.module_utils import plan as plan_module
from ansible_collections.blockyard.storage.plugins.module_utils.backends.file.backend import FileBackend

V = 'V'


# ------------------------------------------------------------------ setups
def build(directory, vol=V, snaps=0, base_fmt='raw', writes_after=True):
    """vol with snapshots s1..s<snaps>, a pattern written before each and
    (writes_after) after the last. Returns the context of the checks."""
    return fk.build(directory, vol, snaps, base_fmt, writes_after=writes_after)


def nothing(directory):
    return {}


class Op(object):
    def __init__(self, name, func, params, setup=nothing, verify=None, volumes_touched=(V,)):
        self.name = name
        self.func = func
        self.params = params            # directory -> params
        self.setup = setup              # directory -> context
        self.verify = verify            # (directory, context) -> None
        self.volumes_touched = volumes_touched

    def __repr__(self):
        return self.name


def verify_created(fmt, provisioning):
    def verify(directory, ctx):
        assert sc.volume_files(directory, V) == sorted(['volume-V', 'volume-V.lock', 'volume-V.meta'])
        path = os.path.join(directory, 'volume-V')
        meta = sc.read_json(os.path.join(directory, 'volume-V.meta'))
        assert (meta['format'], meta['size_bytes'], meta['provisioning']) == (fmt, sc.VOL_SIZE, provisioning)
        if fmt == 'raw':
            assert os.path.getsize(path) == sc.VOL_SIZE and not qcow2.is_qcow2(path)
            allocated = os.stat(path).st_blocks * 512
            if provisioning == 'thick':
                assert allocated >= sc.VOL_SIZE
            else:
                assert allocated < sc.VOL_SIZE
        else:
            header = qcow2.read_header(path)
            assert header.size == sc.VOL_SIZE and header.backing_file is None
        assert not sc.pattern_problems(path, fmt, [(0, 0, sc.VOL_SIZE)])
    return verify


def verify_chain(remaining, active_point=None, size=None):
    """remaining: the snapshots left, by name, oldest first."""
    def verify(directory, ctx):
        points = [p for p in ctx['points'] if p[0] in remaining]
        assert [p[0] for p in points] == list(remaining)
        sc.check_volume_state(directory, V, ctx['timeline'], points, ctx['base_fmt'],
                              info_expected=bool(ctx['points']), active_point=active_point)
        if size:
            desc = sc.info_of(directory, V)
            assert desc['size_bytes'] == desc['details']['virtual_bytes'] == size
    return verify


def verify_snapshot_created(directory, ctx):
    ctx = dict(ctx, points=ctx['points'] + [('s3', ctx['timeline'].now)])
    verify_chain(['s1', 's2', 's3'])(directory, ctx)


def verify_deleted(directory, ctx):
    assert sc.volume_files(directory, V) == []


def verify_copy(dest, point_of, fmt='raw', size=sc.VOL_SIZE, source_remaining=None):
    """dest holds the source's point in time point_of(ctx); the source is as
    before (its snapshots, data and .info)."""
    def verify(directory, ctx):
        assert sc.volume_files(directory, dest) == sorted(['volume-%s' % dest, 'volume-%s.lock' % dest,
                                                           'volume-%s.meta' % dest])
        meta = sc.read_json(os.path.join(directory, 'volume-%s.meta' % dest))
        assert (meta['format'], meta['size_bytes']) == (fmt, size)
        path = os.path.join(directory, 'volume-%s' % dest)
        assert (os.path.getsize(path) if fmt == 'raw' else qcow2.read_header(path).size) == size
        problems = ctx['timeline'].problems(path, fmt, point_of(ctx))
        if size > sc.VOL_SIZE:
            problems += sc.pattern_problems(path, fmt, [(0, sc.VOL_SIZE, size - sc.VOL_SIZE)])
        assert not problems, problems
        verify_chain([p[0] for p in ctx['points']] if source_remaining is None else source_remaining)(directory, ctx)
        assert not [f for f in os.listdir(directory) if 'tmp-snap' in f]
    return verify


OPS = [
    Op('create-sparse', 'ensure_volume', lambda d: sc.vparams(d, V, size='4M'),
       verify=verify_created('raw', 'thin')),
    Op('create-thick', 'ensure_volume', lambda d: sc.vparams(d, V, size='4M', provisioning='thick'),
       verify=verify_created('raw', 'thick')),
    Op('create-qcow2', 'ensure_volume', lambda d: sc.vparams(d, V, size='4M', format='qcow2'),
       verify=verify_created('qcow2', 'thin')),
    Op('extend', 'ensure_volume', lambda d: sc.vparams(d, V, size='8M'),
       setup=build, verify=verify_chain([], size=8 * sc.MIB)),
    Op('extend-with-snapshots', 'ensure_volume', lambda d: sc.vparams(d, V, size='8M'),
       setup=lambda d: build(d, snaps=2), verify=verify_chain(['s1', 's2'], size=8 * sc.MIB)),
    Op('delete', 'ensure_volume', lambda d: sc.vparams(d, V, state='absent', force=True),
       setup=lambda d: build(d, snaps=2), verify=verify_deleted),
    Op('snapshot-create', 'ensure_snapshot', lambda d: sc.sparams(d, V, 's3'),
       setup=lambda d: build(d, snaps=2), verify=verify_snapshot_created),
    Op('snapshot-delete-active', 'ensure_snapshot', lambda d: sc.sparams(d, V, 's3', 'absent'),
       setup=lambda d: build(d, snaps=3), verify=verify_chain(['s1', 's2'])),
    Op('snapshot-delete-middle', 'ensure_snapshot', lambda d: sc.sparams(d, V, 's2', 'absent'),
       setup=lambda d: build(d, snaps=3), verify=verify_chain(['s1', 's3'])),
    Op('snapshot-delete-oldest', 'ensure_snapshot', lambda d: sc.sparams(d, V, 's1', 'absent'),
       setup=lambda d: build(d, snaps=3), verify=verify_chain(['s2', 's3'])),
    Op('snapshot-delete-last-qcow2', 'ensure_snapshot', lambda d: sc.sparams(d, V, 's1', 'absent'),
       setup=lambda d: build(d, snaps=1, base_fmt='qcow2'), verify=verify_chain([])),
    Op('revert', 'ensure_snapshot', lambda d: sc.sparams(d, V, 's2', 'reverted'),
       setup=lambda d: build(d, snaps=2),
       verify=lambda d, ctx: verify_chain(['s1', 's2'], active_point=ctx['points'][-1][1])(d, ctx)),
    Op('clone', 'ensure_volume', lambda d: sc.vparams(d, 'C', source_volume=V),
       setup=lambda d: build(d, snaps=2), verify=verify_copy('C', lambda ctx: ctx['timeline'].now),
       volumes_touched=(V, 'C')),
    Op('clone-plain-qcow2', 'ensure_volume', lambda d: sc.vparams(d, 'C', source_volume=V, format='qcow2'),
       setup=build, verify=verify_copy('C', lambda ctx: ctx['timeline'].now, fmt='qcow2'),
       volumes_touched=(V, 'C')),
    Op('create-from-snapshot', 'ensure_volume',
       lambda d: sc.vparams(d, 'F', source_volume=V, source_snapshot='s1', size='8M'),
       setup=lambda d: build(d, snaps=2), verify=verify_copy('F', lambda ctx: ctx['points'][0][1], size=8 * sc.MIB),
       volumes_touched=(V, 'F')),
]
OPS_BY_NAME = dict((op.name, op) for op in OPS)


# ------------------------------------------------------------------ discovery
@pytest.fixture(scope='module')
def workdir():
    base = '/dev/shm' if fileio.fs_type('/dev/shm') == 'tmpfs' else None
    path = os.path.realpath(tempfile.mkdtemp(prefix='blockyard-crash-', dir=base))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def fresh(workdir, label):
    path = os.path.join(workdir, re.sub(r'[^A-Za-z0-9_.-]', '_', label))
    if os.path.exists(path):
        shutil.rmtree(path)
    os.makedirs(path)
    return path


@pytest.fixture(scope='module')
def discovered(workdir):
    """{op name: [checkpoint names hit, in order]}, from one clean in-process
    run of each operation (which must also pass its checks)."""
    cache = {}
    fragments = {}

    def get(op):
        if op.name not in cache:
            directory = fresh(workdir, 'discover-' + op.name)
            ctx = op.setup(directory)
            with sc.recorded_checkpoints() as hits, recorded_fragments() as merged:
                changed, _result, _diff = getattr(volumes, op.func)(op.params(directory), False)
            assert changed
            op.verify(directory, ctx)
            cache[op.name] = list(hits)
            fragments[op.name] = list(merged)
        return cache[op.name]
    get.fragments = fragments
    return get


@contextlib.contextmanager
def recorded_fragments():
    """Record the plans merged into another one (Plan.extend: a source's
    steps around a copy run as steps of the destination's plan, under its
    checkpoints): [(fragment name, host plan name, first step index, number
    of steps)]."""
    merged = []
    original = plan_module.Plan.extend

    def extend(self, other):
        merged.append((other.name, self.name, len(self.steps), len(other.steps)))
        return original(self, other)

    plan_module.Plan.extend = extend
    try:
        yield merged
    finally:
        plan_module.Plan.extend = original


def plan_names():
    """The named plans (Plan('<name>')) of the file backend's package,
    found through the registry."""
    found = set()
    for path in backends.modules_of('file'):
        with open(path) as handle:
            found |= set(re.findall(r"Plan\(\s*'([^']+)'\s*\)", handle.read()))
    return found


def test_checkpoints_are_covered(discovered):
    """Together the operations reach every named checkpoint of the file backend and
    a step of every plan, so killing at each of their hits covers them all."""
    hits = set()
    for op in OPS:
        hits.update(discovered(op))
    named = sc.checkpoint_literals('file')
    assert named, 'no checkpoint(...) found in the modules of the file backend'
    assert plan_names(), 'no Plan(...) found in the modules of the file backend'
    assert named - hits == set(), 'named checkpoints no operation reaches: %s' % sorted(named - hits)
    plans = plan_names()
    reached = set(h.rsplit('.', 1)[0] for h in hits if re.match(r'^\w+\.\d+$', h))
    # a plan merged into another one is reached when a step of it runs (and
    # is killed) as a step of the plan it was merged into
    for op in OPS:
        for fragment, host, first, count in discovered.fragments[op.name]:
            if any('%s.%d' % (host, i) in hits for i in range(first, first + count)):
                reached.add(fragment)
    assert plans - reached == set(), 'plans never executed: %s' % sorted(plans - reached)


# ------------------------------------------------------------------ invariants
def check_invariants(directory, vol):
    """What must hold right after a kill, before anything recovers."""
    problems = fk.info_problems(directory, vol)
    journal = os.path.join(directory, 'volume-%s.journal' % vol)
    for sidecar in ('meta', 'journal'):
        path = os.path.join(directory, 'volume-%s.%s' % (vol, sidecar))
        if os.path.exists(path):
            try:
                sc.read_json(path)
            except ValueError as exc:
                problems.append('%s is not JSON: %s' % (path, exc))
    if not os.path.exists(journal):
        try:
            FileBackend(directory).load(vol)
        except Exception as exc:  # noqa: reported
            problems.append('volume %s does not load and has no journal: %s' % (vol, exc))
    return problems


def orphans(directory, vol):
    """Files of vol that nothing names (after a recovery)."""
    info = sc.read_info(directory, vol) or {}
    known = set(['volume-%s' % vol, 'volume-%s.meta' % vol, 'volume-%s.lock' % vol, 'volume-%s.info' % vol])
    known |= set(info.values())
    exists = os.path.exists(os.path.join(directory, 'volume-%s' % vol))
    if not exists:
        known = set(['volume-%s.lock' % vol])
    return [f for f in sc.volume_files(directory, vol) if f not in known]


# ------------------------------------------------------------------ the test
def kill_and_check(workdir, op, name, skip, path):
    """One kill; returns a list of problems."""
    label = '%s-%s-%d-%s' % (op.name, name, skip, path)
    directory = fresh(workdir, label)
    ctx = op.setup(directory)
    res = sc.run_child(op.func, op.params(directory), fault=name, skip=skip)
    if res.returncode != -signal.SIGKILL:
        return ['%s: the child was not killed at %s (hit %d): rc %s\n%s\n%s'
                % (label, name, skip + 1, res.returncode, res.stdout[-1500:], res.stderr[-1500:])]
    problems = []
    for vol in op.volumes_touched:
        problems += ['%s: after the kill: %s' % (label, p) for p in check_invariants(directory, vol)]
    try:
        if path == 'B':
            # another task on each volume: recovers, nothing else
            for vol in op.volumes_touched:
                changed, res_b, _d = volumes.ensure_snapshot(sc.sparams(directory, vol, 'unrelated', 'absent'), False)
                problems += ['%s: a journal of our own was discarded: %s' % (label, w)
                             for w in res_b.get('warnings', []) if 'Discarded' in w]
                for problem in check_invariants(directory, vol):
                    problems.append('%s: after recovery: %s' % (label, problem))
                if os.path.exists(os.path.join(directory, 'volume-%s.journal' % vol)):
                    problems.append('%s: the journal of %s survived a recovery' % (label, vol))
                left = orphans(directory, vol)
                if left:
                    problems.append('%s: after recovery, files of %s nothing names: %s' % (label, vol, left))
        changed, result, _diff = getattr(volumes, op.func)(op.params(directory), False)
        problems += ['%s: a journal of our own was discarded: %s' % (label, w)
                     for w in result.get('warnings', []) if 'Discarded' in w]
        op.verify(directory, ctx)
        changed, result, _diff = getattr(volumes, op.func)(op.params(directory), False)
        if changed:
            problems.append('%s: a further run still reports a change: %s' % (label, result.get('actions')))
    except Exception as exc:  # noqa: collected, all points are tried
        problems.append('%s: re-run failed: %s: %s' % (label, type(exc).__name__, exc))
    return problems


@pytest.mark.parametrize('op', OPS, ids=[op.name for op in OPS])
def test_kill_at_every_checkpoint(workdir, discovered, op):
    hits = discovered(op)
    points = sc.kill_points(hits)
    assert points, 'operation %s reached no checkpoint' % op.name
    problems = []
    for name, skip in points:
        for path in ('A', 'B'):
            problems += kill_and_check(workdir, op, name, skip, path)
    assert not problems, '%d problem(s) over %d kill points of %s:\n%s' % (
        len(problems), len(points), op.name, '\n'.join(problems))
