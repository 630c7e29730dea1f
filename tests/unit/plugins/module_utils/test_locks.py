# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for plugins/module_utils/locks.py with real processes (fork) and
real lock files. Ordering is proven with timestamps and events; sleeps only
give other processes time to start waiting, they are never what is asserted."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import multiprocessing
import os
import time

import pytest

from ansible_collections.blockyard.storage.plugins.module_utils import locks
from ansible_collections.blockyard.storage.plugins.module_utils.errors import LockTimeout, StorageError

CTX = multiprocessing.get_context('fork')
WAIT = 10


def _holder(directory, name, acquired, release, events, remove=False):
    with locks.volume_lock(directory, name, timeout=WAIT):
        events.put(('holder', 'enter', time.monotonic()))
        acquired.set()
        release.wait(WAIT)
        if remove:
            locks.remove_lock(directory, name)
        events.put(('holder', 'exit', time.monotonic()))


def _waiter(directory, name, started, events, who='waiter', timeout=WAIT):
    started.set()
    try:
        with locks.volume_lock(directory, name, timeout=timeout):
            path = locks.lock_path(directory, name)
            fd = locks._held[os.path.abspath(path)][0]
            same = os.path.exists(path) and os.fstat(fd).st_ino == os.stat(path).st_ino
            events.put((who, 'enter', time.monotonic(), same))
            time.sleep(0.05)
            events.put((who, 'exit', time.monotonic()))
    except LockTimeout as exc:
        events.put((who, 'timeout', time.monotonic(), exc.msg))


def _collect(events, count):
    return [events.get(timeout=WAIT) for _i in range(count)]


def _start(target, *args):
    proc = CTX.Process(target=target, args=args)
    proc.start()
    return proc


def _join(*procs):
    for proc in procs:
        proc.join(WAIT)
        assert proc.exitcode == 0


def test_lock_path(tmp_path):
    assert locks.lock_path(str(tmp_path), 'db01') == str(tmp_path / 'volume-db01.lock')


def test_two_processes_serialize(tmp_path):
    directory = str(tmp_path)
    acquired, release, started, events = CTX.Event(), CTX.Event(), CTX.Event(), CTX.Queue()
    holder = _start(_holder, directory, 'v', acquired, release, events)
    assert acquired.wait(WAIT)
    waiter = _start(_waiter, directory, 'v', started, events)
    assert started.wait(WAIT)
    time.sleep(0.2)                  # let the waiter reach the lock and wait
    released_at = time.monotonic()
    release.set()
    got = _collect(events, 4)
    _join(holder, waiter)
    times = dict(((who, what), rest[0]) for who, what, *rest in got)
    assert times[('holder', 'exit')] <= times[('waiter', 'enter')]
    assert times[('waiter', 'enter')] >= released_at
    assert [tuple(e[:2]) for e in got] == [
        ('holder', 'enter'), ('holder', 'exit'), ('waiter', 'enter'), ('waiter', 'exit')]


def _counter(directory, rounds, errors):
    path = os.path.join(directory, 'counter')
    for _i in range(rounds):
        with locks.volume_lock(directory, 'v', timeout=WAIT):
            # an unprotected read-modify-write and an exclusive marker: both
            # break as soon as two processes are inside at once
            try:
                fd = os.open(os.path.join(directory, 'inside'), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                os.close(fd)
            except OSError:
                errors.put('two holders at once')
            with open(path) as handle:
                value = int(handle.read())
            time.sleep(0.001)
            with open(path, 'w') as handle:
                handle.write(str(value + 1))
            os.unlink(os.path.join(directory, 'inside'))


def test_many_processes_increment_under_the_lock(tmp_path):
    directory = str(tmp_path)
    (tmp_path / 'counter').write_text('0')
    errors = CTX.Queue()
    procs = [_start(_counter, directory, 25, errors) for _i in range(4)]
    _join(*procs)
    assert errors.empty()
    assert (tmp_path / 'counter').read_text() == '100'


def test_reentrant_in_one_process(tmp_path):
    directory = str(tmp_path)
    started, events = CTX.Event(), CTX.Queue()
    with locks.volume_lock(directory, 'v', timeout=1):
        with locks.volume_lock(directory, 'v', timeout=1):
            with locks.volume_lock(directory, 'v', timeout=1):
                pass
        # the inner exits did not drop the lock: another process times out
        other = _start(_waiter, directory, 'v', started, events, 'other', 0.3)
        got = _collect(events, 1)
        _join(other)
        assert got[0][1] == 'timeout'
    assert locks._held == {}
    # released by the outer exit: now another process gets it
    other = _start(_waiter, directory, 'v', started, events, 'other', WAIT)
    got = _collect(events, 2)
    _join(other)
    assert got[0][1] == 'enter'


def test_different_volumes_do_not_block_each_other(tmp_path):
    directory = str(tmp_path)
    started, events = CTX.Event(), CTX.Queue()
    with locks.volume_lock(directory, 'a', timeout=1):
        other = _start(_waiter, directory, 'b', started, events, 'b', 1)
        got = _collect(events, 2)
        _join(other)
    assert got[0][1] == 'enter'


def test_an_error_inside_releases_the_lock(tmp_path):
    directory = str(tmp_path)
    started, events = CTX.Event(), CTX.Queue()
    with pytest.raises(RuntimeError):
        with locks.volume_lock(directory, 'v', timeout=1):
            raise RuntimeError('boom')
    assert locks._held == {}
    other = _start(_waiter, directory, 'v', started, events, 'other', 1)
    got = _collect(events, 2)
    _join(other)
    assert got[0][1] == 'enter'


def test_a_removed_lock_file_makes_the_waiter_lock_the_new_file(tmp_path):
    directory = str(tmp_path)
    path = locks.lock_path(directory, 'v')
    acquired, release, started, events = CTX.Event(), CTX.Event(), CTX.Event(), CTX.Queue()
    holder = _start(_holder, directory, 'v', acquired, release, events, True)
    assert acquired.wait(WAIT)
    waiter = _start(_waiter, directory, 'v', started, events)
    assert started.wait(WAIT)
    time.sleep(0.2)
    release.set()                    # the holder removes the lock file, then releases
    got = _collect(events, 4)
    _join(holder, waiter)
    entered = [e for e in got if e[:2] == ('waiter', 'enter')][0]
    # the waiter holds a lock on the file that is at the path, not on the
    # removed (orphan) inode
    assert entered[3] is True
    assert os.path.exists(path)
    assert [tuple(e[:2]) for e in got][:2] == [('holder', 'enter'), ('holder', 'exit')]


def _churn(directory, rounds, errors):
    for index in range(rounds):
        with locks.volume_lock(directory, 'v', timeout=WAIT):
            try:
                fd = os.open(os.path.join(directory, 'inside'), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                os.close(fd)
            except OSError:
                errors.put('two holders at once')
            time.sleep(0.001)
            os.unlink(os.path.join(directory, 'inside'))
            if index % 2:
                locks.remove_lock(directory, 'v')    # what a volume delete does


def test_mutual_exclusion_survives_lock_file_removal(tmp_path):
    errors = CTX.Queue()
    procs = [_start(_churn, str(tmp_path), 30, errors) for _i in range(4)]
    _join(*procs)
    assert errors.empty()


def test_timeout_raises_lock_timeout(tmp_path):
    directory = str(tmp_path)
    acquired, release, events = CTX.Event(), CTX.Event(), CTX.Queue()
    holder = _start(_holder, directory, 'db01', acquired, release, events)
    assert acquired.wait(WAIT)
    try:
        start = time.monotonic()
        with pytest.raises(LockTimeout) as err:
            with locks.volume_lock(directory, 'db01', timeout=0.3):
                pytest.fail('got a lock that another process holds')
        elapsed = time.monotonic() - start
    finally:
        release.set()
        _join(holder)
    assert 0.3 <= elapsed < 5
    assert 'volume db01' in err.value.msg
    assert locks.lock_path(directory, 'db01') in err.value.msg
    assert err.value.details['path'] == locks.lock_path(directory, 'db01')
    assert locks._held == {}


def test_lock_in_a_missing_directory(tmp_path):
    with pytest.raises(StorageError) as err:
        with locks.volume_lock(str(tmp_path / 'missing'), 'v', timeout=1):
            pass
    assert 'lock file of volume v' in err.value.msg
    assert locks._held == {}


def test_remove_lock_is_quiet(tmp_path):
    locks.remove_lock(str(tmp_path), 'never-locked')
    with locks.volume_lock(str(tmp_path), 'v', timeout=1):
        assert os.path.exists(locks.lock_path(str(tmp_path), 'v'))
        locks.remove_lock(str(tmp_path), 'v')
        assert not os.path.exists(locks.lock_path(str(tmp_path), 'v'))
