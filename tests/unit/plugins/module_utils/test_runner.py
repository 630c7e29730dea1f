# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for plugins/module_utils/runner.py with real commands."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import multiprocessing
import os
import signal
import sys
import time

import pytest

from ansible_collections.blockyard.storage.plugins.module_utils import runner
from ansible_collections.blockyard.storage.plugins.module_utils.errors import CommandFailed

PY = sys.executable
GiB = 1024 ** 3


def test_success_returns_a_result():
    result = runner.run(['sh', '-c', 'echo out; echo err >&2'])
    assert result.rc == 0
    assert result.stdout == 'out\n'
    assert result.stderr == 'err\n'
    assert result.cmd == ['sh', '-c', 'echo out; echo err >&2']


def test_argv_only_no_shell():
    result = runner.run(['echo', '$HOME; ls *', 5])
    assert result.stdout == '$HOME; ls * 5\n'
    assert result.cmd == ['echo', '$HOME; ls *', '5']


def test_failure_carries_cmd_rc_and_stderr():
    cmd = ['sh', '-c', 'echo partial; echo first >&2; echo "the reason" >&2; exit 3']
    with pytest.raises(CommandFailed) as err:
        runner.run(cmd, what='Resizing volume-x')
    exc = err.value
    assert exc.details['rc'] == 3
    assert exc.details['cmd'] == cmd
    assert exc.details['stderr'] == 'first\nthe reason\n'
    assert exc.details['stdout'] == 'partial\n'
    assert exc.msg == 'Resizing volume-x: sh exited with 3: first; the reason'   # the last lines, what then why
    fail = exc.to_fail()
    assert fail['msg'] == exc.msg and fail['rc'] == 3 and fail['cmd'] == cmd


def test_failure_without_stderr():
    with pytest.raises(CommandFailed) as err:
        runner.run(['false'])
    assert err.value.msg == 'Running false: false exited with 1: no error output'


def test_check_false_and_ok_rcs():
    assert runner.run(['sh', '-c', 'exit 4'], check=False).rc == 4
    assert runner.run(['sh', '-c', 'exit 4'], ok_rcs=(0, 4)).rc == 4
    with pytest.raises(CommandFailed):
        runner.run(['sh', '-c', 'exit 5'], ok_rcs=(0, 4))


def test_a_missing_program():
    with pytest.raises(CommandFailed) as err:
        runner.run(['/nonexistent/blockyard-tool', 'x'], what='Creating volume-x')
    assert err.value.msg.startswith('Creating volume-x: cannot run /nonexistent/blockyard-tool')
    assert 'rc' not in err.value.details          # rc None is dropped from the details
    assert err.value.details['cmd'] == ['/nonexistent/blockyard-tool', 'x']


def test_stdin_data():
    assert runner.run(['cat'], data=b'abc\x00def').stdout == 'abc\x00def'


def test_timeout():
    start = time.monotonic()
    with pytest.raises(CommandFailed) as err:
        runner.run(['sleep', '30'], timeout=0.3, what='Reading volume-x')
    assert time.monotonic() - start < 5
    assert err.value.msg.startswith('Reading volume-x: command timed out after 0.3s')
    assert 'rc' not in err.value.details


def _counting_command(path, succeed_at):
    """A command that fails until its succeed_at-th run."""
    return ['sh', '-c', 'n=$(($(cat "$0") + 1)); echo $n > "$0"; [ $n -ge %d ] || { echo "try $n" >&2; exit 1; }'
            % succeed_at, str(path)]


def test_retries_until_success(tmp_path):
    counter = tmp_path / 'n'
    counter.write_text('0')
    result = runner.run(_counting_command(counter, 3), retries=2, retry_delay=0)
    assert result.rc == 0
    assert counter.read_text() == '3\n'


def test_retries_exhausted(tmp_path):
    counter = tmp_path / 'n'
    counter.write_text('0')
    with pytest.raises(CommandFailed) as err:
        runner.run(_counting_command(counter, 3), retries=1, retry_delay=0)
    assert counter.read_text() == '2\n'
    assert err.value.msg.endswith('try 2')


def test_no_retry_by_default(tmp_path):
    counter = tmp_path / 'n'
    counter.write_text('0')
    with pytest.raises(CommandFailed):
        runner.run(_counting_command(counter, 2))
    assert counter.read_text() == '1\n'


def test_timeouts_are_retried(tmp_path):
    counter = tmp_path / 'n'
    counter.write_text('0')
    cmd = ['sh', '-c', 'n=$(($(cat "$0") + 1)); echo $n > "$0"; [ $n -ge 2 ] || exec sleep 30', str(counter)]
    assert runner.run(cmd, timeout=0.5, retries=1, retry_delay=0).rc == 0
    assert counter.read_text() == '2\n'


def test_c_locale(monkeypatch):
    monkeypatch.setenv('LC_ALL', 'C.UTF-8')
    monkeypatch.setenv('LANG', 'en_US.UTF-8')
    monkeypatch.setenv('BLOCKYARD_UNIT_MARK', 'kept')
    env = dict(line.split('=', 1) for line in runner.run(['env']).stdout.splitlines() if '=' in line)
    assert env['LC_ALL'] == 'C'
    assert env['LANG'] == 'C'
    assert env['BLOCKYARD_UNIT_MARK'] == 'kept'
    env = dict(line.split('=', 1) for line in runner.run(['env'], env={'EXTRA': '1'}).stdout.splitlines()
               if '=' in line)
    assert env['EXTRA'] == '1' and env['LC_ALL'] == 'C'


LIMITS = ('import resource; print(resource.getrlimit(resource.RLIMIT_CPU)[0], '
          'resource.getrlimit(resource.RLIMIT_AS)[0])')


def test_limits_are_applied_to_the_child_only():
    out = runner.run([PY, '-c', LIMITS], cpu_seconds=7, address_space=2 * GiB).stdout.split()
    assert out == ['7', str(2 * GiB)]
    import resource
    assert resource.getrlimit(resource.RLIMIT_CPU)[0] != 7
    out = runner.run([PY, '-c', LIMITS], cpu_seconds=5).stdout.split()
    assert out[0] == '5' and out[1] == str(resource.getrlimit(resource.RLIMIT_AS)[0])


def test_cpu_limit_kills_a_busy_command():
    with pytest.raises(CommandFailed) as err:
        runner.run([PY, '-c', 'while True: pass'], cpu_seconds=1, timeout=30, what='Reading a hostile image')
    assert err.value.details['rc'] < 0
    assert 'killed by signal' in err.value.msg


def test_address_space_limit():
    with pytest.raises(CommandFailed) as err:
        runner.run([PY, '-c', 'x = bytearray(1024 ** 3)'], address_space=512 * 1024 ** 2)
    assert 'MemoryError' in err.value.details['stderr']


# --------------------------------------------------------------------------- checkpoint

def _hit(name, times, env, progress):
    os.environ.pop(runner.FAULT_ENV, None)
    os.environ.pop('BLOCKYARD_FAULT_SKIP', None)
    os.environ.update(env)
    fd = os.open(progress, os.O_WRONLY | os.O_APPEND)
    for index in range(times):
        runner.checkpoint(name)
        os.write(fd, b'%d\n' % index)     # unbuffered: survives a SIGKILL right after


def _run_checkpoints(tmp_path, name, times, env):
    progress = tmp_path / ('progress-%s' % len(os.listdir(str(tmp_path))))
    progress.write_text('')
    proc = multiprocessing.get_context('fork').Process(target=_hit, args=(name, times, env, str(progress)))
    proc.start()
    proc.join(10)
    return proc.exitcode, [int(n) for n in progress.read_text().split()]


def test_checkpoint_is_a_no_op_without_the_variable(tmp_path):
    assert _run_checkpoints(tmp_path, 'volume_present.1', 3, {}) == (0, [0, 1, 2])


def test_checkpoint_ignores_other_names(tmp_path):
    env = {runner.FAULT_ENV: 'volume_present.2'}
    assert _run_checkpoints(tmp_path, 'volume_present.1', 3, env) == (0, [0, 1, 2])
    assert _run_checkpoints(tmp_path, 'volume_present.20', 3, env) == (0, [0, 1, 2])
    assert _run_checkpoints(tmp_path, 'volume_present', 3, env) == (0, [0, 1, 2])


def test_checkpoint_kills_when_the_name_matches(tmp_path):
    rc, done = _run_checkpoints(tmp_path, 'volume_present.2', 3, {runner.FAULT_ENV: 'volume_present.2'})
    assert rc == -signal.SIGKILL
    assert done == []


def test_checkpoint_skips_earlier_hits(tmp_path):
    env = {runner.FAULT_ENV: 'delete.file', 'BLOCKYARD_FAULT_SKIP': '2'}
    rc, done = _run_checkpoints(tmp_path, 'delete.file', 5, env)
    assert rc == -signal.SIGKILL
    assert done == [0, 1]


def test_secrets_never_reach_an_error():
    secret = 'Sup3rS3cretChap'
    with pytest.raises(CommandFailed) as err:
        runner.run(['sh', '-c', 'echo "auth %s" >&2; exit 2' % secret, secret], secrets=[secret],
                   what='Logging in')
    text = repr(err.value.to_fail())
    assert secret not in text and runner.REDACTED in text


def test_the_runner_can_be_replaced_without_patching():
    calls = []

    class Fake:
        def run(self, cmd, **kwargs):
            calls.append(list(cmd))
            return runner.Result(cmd, 0, 'faked', '')
    with runner.use(Fake()):
        assert runner.run(['qemu-img', 'info', '/x']).stdout == 'faked'
    assert calls == [['qemu-img', 'info', '/x']]
    assert runner.run(['true']).stdout == ''       # the real runner again
