# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SIGKILL of the whole process tree of a real `ansible-playbook` run, at a
seeded random time, in every multi-step operation; then the same playbook
again must converge.

ansible-playbook runs each task's module in a session of its own, so the
kill walks the tree (by parent pid and by an environment marker, see
faultkit.ProcessTree): controller, its workers, the module and its qemu-img
all die at once, as on a host crash without the disk loss.

For each operation, KILLS runs are killed: first at a seeded random delay
after the operation wrote its journal (so that kills also land inside short
operations; this also measures the module's start-up), then at a seeded
random delay after the module process appears (around the measured time
at which the operation runs). Right after each kill: every
.info is whole and in Cinder's format, volume_info still lists the
directory and shows the pending operation of a volume with a journal. Then
the playbook (the task, the same task again, an assert that the second
changed nothing) must pass, every point in time's data is checked with
patterns (snapchain.Timeline), the exact .info, and nothing stray is left
(no journal, part file, hidden .tmp, temporary snapshot). The log printed
(-s) says where each kill landed.

Unlike test_crash.py (kills at every named checkpoint, in-process core),
this runs the modules as Ansible runs them, and kills whole trees at
arbitrary instants, including inside qemu-img."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import random
import shutil
import time

import pytest

import faultkit as fk
import snapchain as sc
from ansible_collections.blockyard.storage.plugins.module_utils import qcow2, volumes

V = fk.V

SEED = 20261203
KILLS = 2
# the module's own start-up (AnsiballZ, imports) before the operation runs,
# until the first kill measures it
MODULE_STARTUP = 0.45


class KOp(object):
    def __init__(self, name, module, args, setup, verify, present, size=None):
        self.name = name
        self.module = module            # volume | snapshot
        self.args = args                # (directory, scratch) -> module args (without volume_dir)
        self.setup = setup              # (directory, scratch) -> ctx
        self.verify = verify            # (directory, ctx) -> [problems]
        self.present = present          # volumes that exist afterwards

    def __repr__(self):
        return self.name

    @property
    def func(self):
        return 'ensure_volume' if self.module == 'volume' else 'ensure_snapshot'

    def core_params(self, directory, scratch):
        args = self.args(directory, scratch)
        base = sc.vparams(directory, args.get('name')) if self.module == 'volume' else \
            sc.sparams(directory, args['volume'], args['name'])
        if self.module == 'volume':
            base['provisioning'] = None     # as the module passes it when not given: the recorded one
        base.update(args)
        return base


def verify_thick(directory, ctx):
    problems = []
    files = sc.volume_files(directory, V)
    if files != sorted(['volume-V', 'volume-V.lock', 'volume-V.meta']):
        problems.append('files of V: %s' % files)
        return problems
    meta = sc.read_json(os.path.join(directory, 'volume-V.meta'))
    path = os.path.join(directory, 'volume-V')
    if (meta['format'], meta['size_bytes'], meta['provisioning']) != ('raw', 16 * sc.MIB, 'thick'):
        problems.append('.meta of V: %s' % meta)
    if os.path.getsize(path) != 16 * sc.MIB or qcow2.is_qcow2(path):
        problems.append('volume-V is not a 16 MiB raw file')
    if os.stat(path).st_blocks * 512 < 16 * sc.MIB:
        problems.append('volume-V is not fully allocated (%d bytes)' % (os.stat(path).st_blocks * 512))
    problems += sc.pattern_problems(path, 'raw', [(0, 0, 16 * sc.MIB)])
    return problems


def verify_deleted(directory, ctx):
    left = sorted(os.listdir(directory))
    return ['files left after the delete: %s' % left] if left else []


OPS = [
    KOp('create-thick', 'volume', lambda d, s: dict(name=V, size='16M', provisioning='thick'),
        setup=lambda d, s: {}, verify=verify_thick, present=[V]),
    KOp('clone', 'volume', lambda d, s: dict(name='C', source_volume=V),
        setup=fk.setup_chain(2), verify=fk.verify_copy('C', lambda ctx: ctx['timeline'].now), present=[V, 'C']),
    KOp('from-snapshot', 'volume', lambda d, s: dict(name='F', source_volume=V, source_snapshot='s1', size='8M'),
        setup=fk.setup_chain(2), verify=fk.verify_copy('F', lambda ctx: ctx['points'][0][1], size=8 * sc.MIB),
        present=[V, 'F']),
    KOp('from-image', 'volume', lambda d, s: dict(name='I', source_image=os.path.join(s, 'image.raw'),
                                                  source_image_format='raw', format='qcow2'),
        setup=fk.setup_image, verify=fk.verify_copy('I', lambda ctx: 2, fmt='qcow2', size=8 * sc.MIB, source=False),
        present=['I']),
    KOp('extend-thick', 'volume', lambda d, s: dict(name=V, size='16M'),
        setup=fk.setup_chain(0, provisioning='thick'), verify=fk.verify_chain([], size=16 * sc.MIB, thick=True), present=[V]),
    KOp('snapshot-create', 'snapshot', lambda d, s: dict(volume=V, name='s3'),
        setup=fk.setup_chain(2), verify=fk.verify_snapshot_created, present=[V]),
    KOp('snapshot-delete-first', 'snapshot', lambda d, s: dict(volume=V, name='s1', state='absent'),
        setup=fk.setup_chain(3), verify=fk.verify_chain(['s2', 's3']), present=[V]),
    KOp('snapshot-delete-middle', 'snapshot', lambda d, s: dict(volume=V, name='s2', state='absent'),
        setup=fk.setup_chain(3), verify=fk.verify_chain(['s1', 's3']), present=[V]),
    KOp('snapshot-delete-latest', 'snapshot', lambda d, s: dict(volume=V, name='s3', state='absent'),
        setup=fk.setup_chain(3), verify=fk.verify_chain(['s1', 's2']), present=[V]),
    KOp('revert', 'snapshot', lambda d, s: dict(volume=V, name='s2', state='reverted'),
        setup=fk.setup_chain(2), verify=fk.verify_chain(['s1', 's2'], active_point=lambda ctx: ctx['points'][-1][1]),
        present=[V]),
    KOp('delete-force', 'volume', lambda d, s: dict(name=V, state='absent', force=True),
        setup=fk.setup_chain(2), verify=verify_deleted, present=[]),
]


def fresh(root, label):
    path = os.path.join(root, label)
    if os.path.exists(path):
        shutil.rmtree(path)
    os.makedirs(path)
    return path


def journals(directory):
    return sorted(e for e in os.listdir(directory) if e.endswith('.journal'))


def in_flight(directory):
    """What an interrupted operation left: journals, part files, hidden
    temporaries, temporary snapshots."""
    return sorted(e for e in os.listdir(directory)
                  if e.endswith('.journal') or e.startswith('.') or 'tmp-snap' in e)


def calibrate(op, root, scratch):
    """One in-process run on a throwaway copy: its duration (the kill
    window), and a check that the operation passes its own checks."""
    directory = fresh(root, 'calibrate')
    ctx = op.setup(directory, scratch)
    start = time.monotonic()
    getattr(volumes, op.func)(op.core_params(directory, scratch), False)
    seconds = time.monotonic() - start
    problems = op.verify(directory, ctx)
    shutil.rmtree(directory)
    return seconds, problems


def kill_once(op, root, scratch, index, rng, op_seconds, startup, log):
    """Start the playbook, kill its tree at a random time, re-run it.
    Returns (problems, the module's measured start-up time or None)."""
    label = 'kill%d' % index
    directory = fresh(root, label)
    ctx = op.setup(directory, scratch)
    playbook = fk.write_playbook(os.path.join(root, '%s.yml' % label), directory,
                                 fk.twice(op.module, op.args(directory, scratch)))
    # first after the journal appears (measuring the module's start-up),
    # then after the module process appears
    trigger = 'journal' if index % 2 == 0 else 'module'
    if trigger == 'module':
        # around the operation: from shortly before its journal to its end
        delay = rng.uniform(0.8 * startup, startup + 2 * op_seconds)
    else:
        delay = rng.uniform(0, op_seconds)
    measured = None
    tree = fk.start_playbook(playbook, root, label)
    problems = []
    try:
        deadline = time.monotonic() + 120
        module = None
        while module is None and not tree.finished():
            assert time.monotonic() < deadline, 'the module never started:\n%s' % tree.output()[-2000:]
            module = fk.module_pid(tree)
            time.sleep(0.001)
        module_seen = time.monotonic()
        if trigger == 'journal' and module is not None:
            while not journals(directory) and fk.alive(module):
                time.sleep(0.0003)
            if journals(directory):
                measured = time.monotonic() - module_seen
        start = time.monotonic()
        while time.monotonic() - start < delay and not tree.finished():
            time.sleep(0.0005)
        killed = not tree.finished()
        processes = tree.kill() if killed else 0
    finally:
        tree.cleanup()
    left = in_flight(directory)
    log.append('%s kill %d (after %s + %.3fs): %s; left: %s'
               % (op.name, index, trigger, delay, 'killed %d processes' % processes if killed
                  else 'finished before the kill', left or 'nothing in flight'))
    problems += after_kill_problems(directory)
    res = fk.run_playbook(playbook, root, label + '-rerun')
    if not res.ok:
        problems.append('the re-run after the kill failed (rc %s, recap %s): %s\n%s'
                        % (res.rc, res.recap, res.failure_messages(), res.tail(2500)))
        return ['%s: %s' % (label, p) for p in problems], measured
    problems += op.verify(directory, ctx)
    problems += ['stray files after the re-run: %s' % s for s in [fk.strays(directory, op.present)] if s]
    return ['%s (%s): %s' % (label, left or 'nothing in flight', p) for p in problems], measured


def after_kill_problems(directory):
    """Right after the kill, before anything recovers: every .info is whole;
    volume_info lists the directory, and a volume with a journal shows its
    pending_operation (a volume exists when volume-<v> or its .info does)."""
    problems = []
    names = sorted(set(e[len('volume-'):].split('.')[0] for e in os.listdir(directory) if e.startswith('volume-')))
    for vol in names:
        problems += ['after the kill: %s' % p for p in fk.info_problems(directory, vol)]
    try:
        volumes.volume_info(dict(sc.LOCATION, volume_dir=directory))
    except Exception as exc:  # noqa: reported
        problems.append('after the kill, volume_info of the directory fails: %s: %s' % (type(exc).__name__, exc))
    for journal in journals(directory):
        vol = journal[len('volume-'):-len('.journal')]
        if not any(os.path.exists(os.path.join(directory, 'volume-%s%s' % (vol, s))) for s in ('', '.info')):
            continue        # not a volume (yet): a create in flight
        try:
            desc = sc.info_of(directory, vol)
        except Exception as exc:  # noqa: reported
            problems.append('after the kill, volume_info of %s (journal %s) fails: %s: %s'
                            % (vol, journal, type(exc).__name__, exc))
            continue
        pending = (desc or {}).get('pending_operation')
        if not isinstance(pending, dict) or not pending.get('op'):
            problems.append('after the kill, volume_info of %s shows no pending_operation although %s exists '
                            '(got %r)' % (vol, journal, pending))
    return problems


@pytest.fixture(scope='module')
def scratch():
    with fk.scratch_dir('blockyard-faults-kill-') as path:
        yield path


@pytest.mark.parametrize('op', OPS, ids=[op.name for op in OPS])
def test_kill_process_tree(scratch, op):
    root = fresh(scratch, op.name)
    rng = random.Random('%s-%s' % (SEED, op.name))
    op_seconds, problems = calibrate(op, root, scratch)
    assert not problems, 'the operation fails its checks without any kill:\n%s' % '\n'.join(problems)
    log = []
    startup = MODULE_STARTUP
    for index in range(KILLS):
        found, measured = kill_once(op, root, scratch, index, rng, op_seconds, startup, log)
        problems += found
        startup = measured if measured is not None else startup
    print('\n'.join(['%s: %.3fs in-process' % (op.name, op_seconds)] + log))
    assert not problems, '%d problem(s):\n%s\nkills:\n%s' % (len(problems), '\n'.join(problems), '\n'.join(log))


def test_the_tree_kill_reaches_the_module(scratch):
    """The module of a task runs in a session of its own (killing the
    controller's process group would miss it); the tree kill reaches it and
    its children."""
    root = fresh(scratch, 'tree')
    playbook = fk.write_playbook(os.path.join(root, 'sleep.yml'), root, [
        fk.task('ansible.builtin.command', {'argv': ['sleep', '300']}, title='sleep')])
    tree = fk.start_playbook(playbook, root, 'sleep')
    try:
        deadline = time.monotonic() + 60
        sleeper = None
        while sleeper is None:
            assert time.monotonic() < deadline and not tree.finished(), tree.output()[-2000:]
            sleeper = tree.find('sleep 300')
            time.sleep(0.01)
        controller = fk.session_of(tree.proc.pid)
        module = fk.session_of(sleeper)
        assert module[1] != controller[1], 'the task ran in the controller\'s session %s' % (controller,)
        tree.kill()
        assert not fk.alive(sleeper), 'the module\'s sleep survived the tree kill'
    finally:
        tree.cleanup()
