# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Concurrency under contention.

- Opposite-direction clones: with volumes a and b, ensure_volume(b,
  source_volume=a) and ensure_volume(a, source_volume=b) at once (and a
  four-process mix with real copies): locks taken source-then-destination
  deadlock until the lock timeout; taken in one fixed order they never do.
  The children get a short lock timeout (the core's default is 600 s) and
  sleep a little after taking each lock, so that both hold their first lock
  before asking for the second: a deadlock shows on every run.
- Concurrent playbooks: four real ansible-playbook runs at once, three on
  the same volume (snapshots and a delete, clones, an extend and a copy of a
  snapshot) and one on another volume; all succeed (or fail only with a
  clear lock/conflict message, and then succeed alone), and the final state
  is consistent: exact .info, every point in time's data, every copy's data,
  no stray file."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import re
import time

import faultkit as fk
import snapchain as sc

LOCK_TIMEOUT = 10       # seconds, instead of the core's 600
HOLD = 0.2              # seconds slept after each lock is taken
FINISH_WITHIN = 8       # seconds of wall time for each child


def run_children(calls, scratch, label):
    """calls: [(func, params, wave)], started together behind start
    barriers: wave 0 first, wave 1 0.1 s later (so that wave 0 holds its
    first locks). Returns [(rc, report, stderr, wall seconds)]."""
    gos = [os.path.join(scratch, 'go-%s-%d' % (label, wave)) for wave in (0, 1)]
    procs = [fk.child_call(func, params, lock_timeout=LOCK_TIMEOUT, hold_after_lock=HOLD, go=gos[wave])
             for func, params, wave in calls]
    time.sleep(0.5)                         # every child is waiting at its barrier
    start = time.monotonic()
    open(gos[0], 'w').close()
    time.sleep(0.1)
    open(gos[1], 'w').close()
    results = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=LOCK_TIMEOUT * 4)
        except Exception:  # noqa: a hung child is killed, then reported
            proc.kill()
            out, err = proc.communicate()
        wall = time.monotonic() - start
        lines = out.strip().splitlines()
        try:
            report = json.loads(lines[-1]) if lines else {}
        except ValueError:
            report = {'raw': out[-2000:]}
        results.append((proc.returncode, report, err[-2000:], wall))
    return results


def child_problems(calls, results):
    problems = []
    for (func, params, _wave), (rc, report, err, wall) in zip(calls, results):
        what = '%s(name=%s, source_volume=%s)' % (func, params.get('name'), params.get('source_volume'))
        if rc != 0:
            problems.append('%s failed (rc %s) after %.1fs: %s %s %s'
                            % (what, rc, wall, report.get('error'), report.get('msg'), err[-500:]))
        elif wall > FINISH_WITHIN:
            problems.append('%s took %.1fs (a lock wait: deadlock?)' % (what, wall))
    return problems


def test_opposite_direction_clones_of_existing_volumes(fast_vdir, tmp_path):
    for name, first in (('a', 0x41), ('b', 0x61)):
        fk.build(fast_vdir, name, snaps=1, timeline=sc.Timeline(first=first))
    before = sc.fingerprint(fast_vdir)
    calls = [('ensure_volume', sc.vparams(fast_vdir, 'b', source_volume='a'), 0),
             ('ensure_volume', sc.vparams(fast_vdir, 'a', source_volume='b'), 0)]
    results = run_children(calls, str(tmp_path), 'pair')
    problems = child_problems(calls, results)
    after = sc.fingerprint(fast_vdir)
    if after != before:
        problems.append('the volumes changed: %s' % sorted(p for p in set(before) | set(after)
                                                           if before.get(p) != after.get(p)))
    assert not problems, '\n'.join(problems)


def test_opposite_direction_clones_with_real_copies(fast_vdir, tmp_path):
    """a->c and b->d are real copies (through temporary snapshots), while
    b<-a and a<-b (both exist, started 0.1 s earlier) take the same two
    locks in opposite orders."""
    ta = fk.build(fast_vdir, 'a', snaps=1, timeline=sc.Timeline(first=0x41))
    tb = fk.build(fast_vdir, 'b', snaps=1, timeline=sc.Timeline(first=0x61))
    calls = [('ensure_volume', sc.vparams(fast_vdir, 'c', source_volume='a'), 1),
             ('ensure_volume', sc.vparams(fast_vdir, 'a', source_volume='b'), 0),
             ('ensure_volume', sc.vparams(fast_vdir, 'b', source_volume='a'), 0),
             ('ensure_volume', sc.vparams(fast_vdir, 'd', source_volume='b'), 1)]
    results = run_children(calls, str(tmp_path), 'mix')
    problems = child_problems(calls, results)
    for ctx, copy in ((ta, 'c'), (tb, 'd')):
        if os.path.exists(os.path.join(fast_vdir, 'volume-%s' % copy)):
            problems += fk.copy_problems(fast_vdir, copy, ctx['timeline'], ctx['timeline'].now)
        problems += fk.chain_problems(fast_vdir, ctx, ['s1'])
    problems += ['stray files: %s' % s for s in [fk.strays(fast_vdir, ['a', 'b', 'c', 'd'])] if s]
    assert not problems, '\n'.join(problems)


# ------------------------------------------------------------------ playbooks
CLEAR_FAILURE = re.compile(r'lock|in progress|conflict|interrupted|re-run after', re.I)


def test_concurrent_playbooks(fast_vdir, tmp_path):
    work = str(tmp_path)
    tv, tw = sc.Timeline(first=0x41), sc.Timeline(first=0x61)
    fk.build(fast_vdir, 'V', snaps=1, timeline=tv)       # V: s1 at point 1, point 2 live
    v_s1 = 1
    fk.build(fast_vdir, 'W', snaps=0, timeline=tw)
    tw.write(*sc.active_view(fast_vdir, 'W'))           # W: point 2 live
    t = fk.task
    books = {
        'snapshots-of-V': [t('snapshot', dict(volume='V', name='p1')), t('snapshot', dict(volume='V', name='p2')),
                           t('snapshot', dict(volume='V', name='p3')),
                           t('snapshot', dict(volume='V', name='p2', state='absent'))],
        'clones-of-V': [t('volume', dict(name='C1', source_volume='V')),
                        t('volume', dict(name='C2', source_volume='V', format='qcow2'))],
        'extend-and-copy-V': [t('volume', dict(name='V', size='8M')),
                              t('volume', dict(name='F', source_volume='V', source_snapshot='s1'))],
        'other-volume-W': [t('snapshot', dict(volume='W', name='w1')), t('volume', dict(name='W', size='8M')),
                           t('volume', dict(name='W2', source_volume='W')),
                           t('snapshot', dict(volume='W', name='w1', state='absent')),
                           t('volume', dict(name='W2', size='12M'))],
    }
    paths = dict((name, fk.write_playbook(os.path.join(work, '%s.yml' % name), fast_vdir, tasks))
                 for name, tasks in books.items())
    trees = dict((name, fk.start_playbook(path, work, name)) for name, path in sorted(paths.items()))
    problems, notes = [], []
    try:
        for name, tree in sorted(trees.items()):
            try:
                rc = tree.wait(300)
            except Exception:  # noqa: reported
                tree.kill()
                rc = None
            res = fk.PlaybookResult(rc, tree.output())
            if res.ok:
                continue
            msgs = res.failure_messages()
            if msgs and all(CLEAR_FAILURE.search(m) for m in msgs) and 'Unexpected error' not in ' '.join(msgs):
                notes.append('%s failed clearly: %s' % (name, msgs))
                again = fk.run_playbook(paths[name], work, name + '-alone')
                if not again.ok:
                    problems.append('%s failed again alone: %s' % (name, again.failure_messages() or again.tail()))
            else:
                problems.append('%s failed (rc %s): %s\n%s' % (name, rc, msgs, res.tail(2000)))
    finally:
        for tree in trees.values():
            tree.cleanup()
    assert not problems, '\n'.join(problems)

    # V: s1, p1, p3 (p2 deleted), no write meanwhile: p1 and p3 hold point 2
    sc.check_volume_state(fast_vdir, 'V', tv, [('s1', v_s1), ('p1', 2), ('p3', 2)])
    assert sc.info_of(fast_vdir, 'V')['size_bytes'] == 8 * sc.MIB
    # the clones hold point 2, at V's size when they were taken (before or after the extend)
    for copy, fmt in (('C1', 'raw'), ('C2', 'qcow2')):
        size = sc.read_json(os.path.join(fast_vdir, 'volume-%s.meta' % copy))['size_bytes']
        assert size in (4 * sc.MIB, 8 * sc.MIB), (copy, size)
        problems += fk.copy_problems(fast_vdir, copy, tv, 2, fmt, size)
    problems += fk.copy_problems(fast_vdir, 'F', tv, v_s1)
    # W: its only snapshot deleted, extended; W2: W's data, 12 MiB
    sc.check_volume_state(fast_vdir, 'W', tw, [])
    assert sc.info_of(fast_vdir, 'W')['size_bytes'] == 8 * sc.MIB
    problems += fk.copy_problems(fast_vdir, 'W2', tw, 2, size=12 * sc.MIB)
    problems += ['stray files: %s' % s for s in [fk.strays(fast_vdir, ['V', 'W', 'C1', 'C2', 'F', 'W2'])] if s]
    print('\n'.join(notes))
    assert not problems, '\n'.join(problems)
