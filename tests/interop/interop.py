# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers of the interop stage: Cinder's NfsDriver driven through
cinder_driver.py in the Cinder venv (.venv-cinder, made by scripts/interop).
See docs/cinder-interop.md."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import json
import os
import stat
import subprocess
import tempfile
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
DRIVER = os.path.join(HERE, 'cinder_driver.py')
GIB = 1024 ** 3


def cinder_python():
    path = os.environ.get('BLOCKYARD_CINDER_PYTHON') or os.path.join(REPO_ROOT, '.venv-cinder', 'bin', 'python')
    if not os.access(path, os.X_OK):
        pytest.fail('no Cinder venv at %s: run scripts/interop (it creates .venv-cinder and runs these tests)'
                    % path, pytrace=False)
    return path


def new_id():
    """Cinder's ids are lowercase UUIDs."""
    return str(uuid.uuid4())


class CinderError(Exception):
    def __init__(self, answer):
        Exception.__init__(self, '%s: %s' % (answer.get('type'), answer.get('error')))
        self.answer = answer
        self.type = answer.get('type')
        self.error = answer.get('error') or ''


class Cinder(object):
    """One configured Cinder NfsDriver on one share. Requests go to a
    long-running `cinder_driver.py serve` process (Cinder's import costs
    ~1.4 s); `oneshot` runs a separate invocation on the same state file."""

    def __init__(self, root, share, qcow2=False):
        self.share = share
        self.base = os.path.join(root, 'mnt')
        self.directory = os.path.join(self.base, hashlib.md5(share.encode('utf-8')).hexdigest())
        self.state = os.path.join(root, 'cinder-%s.json' % hashlib.md5(share.encode('utf-8')).hexdigest()[:8])
        os.makedirs(self.directory)
        self.python = cinder_python()
        argv = [self.python, DRIVER, '--state', self.state, 'init', '--share', share,
                '--mount-point-base', self.base]
        if qcow2:
            argv.append('--qcow2')
        subprocess.run(argv, check=True)
        self.stderr = tempfile.TemporaryFile(mode='w+')
        self.proc = subprocess.Popen([self.python, DRIVER, '--state', self.state, 'serve'],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
                                     universal_newlines=True)
        hello = self.proc.stdout.readline()
        if not hello:
            raise AssertionError('cinder_driver.py serve did not start:\n%s' % self.log())
        assert json.loads(hello).get('ready'), hello

    def log(self):
        self.stderr.seek(0)
        return self.stderr.read()[-6000:]

    def call(self, op, **request):
        """Run one driver operation; raises CinderError when Cinder failed."""
        request['op'] = op
        self.proc.stdin.write(json.dumps(request) + '\n')
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError('cinder_driver.py died during %s:\n%s' % (request, self.log()))
        answer = json.loads(line)
        if not answer['ok']:
            raise CinderError(answer)
        return answer

    def oneshot(self, op, **request):
        """The same, as a separate invocation of the driver script."""
        argv = [self.python, DRIVER, '--state', self.state, op]
        for key, value in sorted(request.items()):
            if value is True:
                argv.append('--' + key.replace('_', '-'))
            else:
                argv += ['--' + key.replace('_', '-'), str(value)]
        res = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False)
        answer = json.loads(res.stdout)
        if not answer['ok']:
            raise CinderError(answer)
        assert res.returncode == 0
        return answer

    def rows(self):
        with open(self.state) as handle:
            return json.load(handle)

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()


def owner_mode(path):
    st = os.lstat(path)
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)
