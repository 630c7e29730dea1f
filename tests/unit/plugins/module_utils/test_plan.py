# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for plugins/module_utils/plan.py: listing, executing, checkpoints
between steps, and undo of a step that fails cleanly."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import multiprocessing
import os
import signal

import pytest

from ansible_collections.blockyard.storage.plugins.module_utils import runner
from ansible_collections.blockyard.storage.plugins.module_utils.plan import Plan


def test_an_empty_plan():
    plan = Plan('x')
    assert plan.actions == []
    assert len(plan) == 0
    assert not plan
    assert plan.after is None
    plan.execute()


def test_actions_list_only_steps_with_text():
    plan = Plan('x')
    assert plan.add('', print) is plan             # bookkeeping: not listed
    plan.add('create volume-a', print).add('record a')
    assert plan.actions == ['create volume-a', 'record a']
    assert len(plan) == 2
    assert plan


def test_a_plan_of_bookkeeping_only_is_empty():
    plan = Plan('x').add('', print).add('', print)
    assert not plan and len(plan) == 0


def test_execute_runs_the_steps_in_order_with_their_arguments():
    calls = []
    plan = Plan('x')
    plan.add('one', lambda *a, **k: calls.append(('one', a, k)), 1, 2, key='v')
    plan.add('text only')                            # nothing to call
    plan.add('', lambda: calls.append(('journal', (), {})))
    plan.add('three', calls.append, ('three', (), {}))
    plan.execute()
    assert calls == [('one', (1, 2), {'key': 'v'}), ('journal', (), {}), ('three', (), {})]


def test_check_mode_is_listing_without_executing():
    calls = []
    plan = Plan('x').add('delete volume-a', calls.append, 'deleted')
    assert plan.actions == ['delete volume-a']
    assert calls == []


def test_extend_appends_steps_and_undos():
    calls = []
    first = Plan('a').add('a1', calls.append, 'a1')
    second = Plan('b').add('b1', calls.append, 'b1')
    second.on_failure(calls.append, 'undo-b')
    assert first.extend(second) is first
    assert first.actions == ['a1', 'b1']
    first.execute()
    assert calls == ['a1', 'b1']
    first.add('boom', _boom)
    with pytest.raises(RuntimeError):
        first.execute()
    assert calls[-1] == 'undo-b'


def _boom(*_args):
    raise RuntimeError('step failed')


def test_a_failing_step_stops_the_plan_and_runs_the_undos_newest_first():
    calls = []
    plan = Plan('x')
    plan.on_failure(calls.append, 'undo-1')
    plan.add('one', calls.append, 'one')
    plan.on_failure(calls.append, 'undo-2')
    plan.add('two', _boom)
    plan.add('three', calls.append, 'three')
    with pytest.raises(RuntimeError) as err:
        plan.execute()
    assert str(err.value) == 'step failed'
    assert calls == ['one', 'undo-2', 'undo-1']


def test_a_failing_undo_does_not_hide_the_error():
    calls = []
    plan = Plan('x')
    plan.on_failure(calls.append, 'undo-1')
    plan.on_failure(_boom_undo)
    plan.add('one', _boom)
    with pytest.raises(RuntimeError) as err:
        plan.execute()
    assert str(err.value) == 'step failed'
    assert calls == ['undo-1']


def _boom_undo():
    raise OSError('undo failed')


def test_undos_do_not_run_on_success():
    calls = []
    plan = Plan('x')
    plan.on_failure(calls.append, 'undo')
    plan.add('one', calls.append, 'one')
    plan.execute()
    assert calls == ['one']


# --------------------------------------------------------------------------- checkpoints

def _execute(name, fault, progress):
    os.environ.pop('BLOCKYARD_FAULT_SKIP', None)
    if fault:
        os.environ[runner.FAULT_ENV] = fault
    else:
        os.environ.pop(runner.FAULT_ENV, None)
    fd = os.open(progress, os.O_WRONLY | os.O_APPEND)
    plan = Plan(name)
    for index in range(3):
        plan.add('step %d' % index, os.write, fd, b'%d\n' % index)
    plan.on_failure(os.write, fd, b'undo\n')
    plan.execute()


def _run(tmp_path, name, fault):
    progress = tmp_path / 'progress'
    progress.write_text('')
    proc = multiprocessing.get_context('fork').Process(target=_execute, args=(name, fault, str(progress)))
    proc.start()
    proc.join(10)
    return proc.exitcode, progress.read_text().split()


def test_every_step_is_a_checkpoint(tmp_path):
    assert _run(tmp_path, 'volume_present', None) == (0, ['0', '1', '2'])
    # killed before step 1: step 0 done, nothing after, and no undo (a crash
    # is left to the journal and the next run)
    assert _run(tmp_path, 'volume_present', 'volume_present.1') == (-signal.SIGKILL, ['0'])
    assert _run(tmp_path, 'volume_present', 'volume_present.0') == (-signal.SIGKILL, [])
    assert _run(tmp_path, 'volume_present', 'volume_present.2') == (-signal.SIGKILL, ['0', '1'])
    # another plan's checkpoint does not fire
    assert _run(tmp_path, 'volume_absent', 'volume_present.1') == (0, ['0', '1', '2'])


def test_a_failed_run_reports_what_it_had_done():
    from ansible_collections.blockyard.storage.plugins.module_utils.errors import StorageError

    def fail():
        raise StorageError('step two failed')
    plan = Plan('x')
    plan.add('step one', lambda: None)
    plan.add('', lambda: None)
    plan.add('step two', fail)
    with pytest.raises(StorageError) as err:
        plan.execute()
    assert err.value.details['actions_done'] == ['step one']
    assert err.value.to_fail()['actions_done'] == ['step one']
