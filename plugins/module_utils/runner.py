# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run external commands: argv only (no shell), LC_ALL=C, timeouts, retries,
optional resource limits, and errors that carry cmd, rc and stderr."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import signal
import subprocess
import time

from ansible_collections.blockyard.storage.plugins.module_utils.errors import CommandFailed

DEFAULT_TIMEOUT = 600

# Fault injection for the crash-safety tests: when BLOCKYARD_FAULT_POINT names
# a checkpoint, the process kills itself with SIGKILL on reaching it (after
# BLOCKYARD_FAULT_SKIP earlier hits).  Unset in normal use: a no-op.
FAULT_ENV = 'BLOCKYARD_FAULT_POINT'
_fault_hits = {}


def checkpoint(name):
    """Mark a step boundary of a multi-step operation (see FAULT_ENV)."""
    wanted = os.environ.get(FAULT_ENV)
    if not wanted or wanted != name:
        return
    _fault_hits[name] = _fault_hits.get(name, 0) + 1
    if _fault_hits[name] > int(os.environ.get('BLOCKYARD_FAULT_SKIP', '0')):
        os.kill(os.getpid(), signal.SIGKILL)


class Result:
    def __init__(self, cmd, rc, stdout, stderr):
        self.cmd = cmd
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr


def _limiter(cpu_seconds, address_space):
    def apply():
        import resource
        _die_with_parent()
        if cpu_seconds:
            resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
        if address_space:
            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    return apply


def _die_with_parent():
    """A command that writes data (qemu-img into an RBD image) must not
    outlive a module that is killed: the next run's recovery removes what it
    writes into (Linux prctl PR_SET_PDEATHSIG, SIGKILL)."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


REDACTED = '********'


def redact(text, secrets):
    """text with every secret replaced (CHAP passwords, Ceph keys)."""
    if isinstance(text, list):
        return [redact(item, secrets) for item in text]
    for secret in secrets or ():
        if secret and isinstance(text, str):
            text = text.replace(secret, REDACTED)
    return text


class Runner:
    """Runs commands for the core. Unit tests replace it with `use()` (a
    fake that records argv and answers with canned results), without
    patching any module's globals."""

    def run(self, cmd, **kwargs):
        return _execute(cmd, **kwargs)


_current = [Runner()]


def use(runner):
    """Context manager: run commands through `runner` (an object with a
    run(cmd, **kwargs) method) for its duration."""
    import contextlib

    @contextlib.contextmanager
    def swap():
        _current.append(runner)
        try:
            yield runner
        finally:
            _current.remove(runner)
    return swap()


def run(cmd, **kwargs):
    """Run cmd (a list) and return a Result, through the current runner
    (see _execute for the keywords)."""
    return _current[-1].run(cmd, **kwargs)


def _execute(cmd, check=True, timeout=DEFAULT_TIMEOUT, retries=0, retry_delay=1.0, data=None,
             cpu_seconds=None, address_space=None, env=None, what=None, ok_rcs=(0,), secrets=()):
    """Run cmd (a list) and return a Result.

    With check, a return code outside ok_rcs raises CommandFailed whose
    message starts with `what` (what we were doing, on which object).
    Retries re-run a failed command `retries` more times. secrets: values
    that must never appear in an error (cmd, stdout, stderr are redacted).
    """
    cmd = [str(c) for c in cmd]
    full_env = dict(os.environ)
    full_env.update({'LC_ALL': 'C', 'LANG': 'C'})
    if env:
        full_env.update(env)
    preexec = _limiter(cpu_seconds, address_space) if (cpu_seconds or address_space) else None
    attempt = 0
    while True:
        attempt += 1
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env,
                                    preexec_fn=preexec, close_fds=True)
        except OSError as exc:
            raise CommandFailed('%s: cannot run %s: %s. Install the package that provides it (see bindep.txt).'
                                % (what or 'Running a command', cmd[0], exc), cmd=redact(cmd, secrets), rc=None)
        try:
            out, err = proc.communicate(input=data, timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            result = Result(cmd, None, out.decode('utf-8', 'replace'), err.decode('utf-8', 'replace'))
            if attempt <= retries:
                time.sleep(retry_delay)
                continue
            raise CommandFailed('%s: command timed out after %ss. Check that the storage behind it responds, '
                                'then re-run.' % (what or 'Running %s' % cmd[0], timeout),
                                cmd=redact(cmd, secrets), rc=None, stdout=redact(result.stdout, secrets),
                                stderr=redact(result.stderr, secrets))
        result = Result(cmd, proc.returncode, out.decode('utf-8', 'replace'), err.decode('utf-8', 'replace'))
        if not check or result.rc in ok_rcs:
            return result
        if attempt <= retries:
            time.sleep(retry_delay)
            continue
        # the last lines of stderr: qemu-img says what failed, then why
        lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
        reason = '; '.join(lines[-3:]) if lines else 'no error output'
        if result.rc is not None and result.rc < 0:
            reason = 'killed by signal %d (resource limit?); %s' % (-result.rc, reason)
        raise CommandFailed(redact('%s: %s exited with %s: %s' % (what or 'Running %s' % cmd[0],
                                                                  os.path.basename(cmd[0]), result.rc, reason),
                                   secrets),
                            cmd=redact(cmd, secrets), rc=result.rc, stdout=redact(result.stdout, secrets),
                            stderr=redact(result.stderr, secrets))
