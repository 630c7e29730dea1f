# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The snapshot scenarios on a real GlusterFS volume mounted through FUSE
(Cinder's GlusterFS driver is where the .info layout comes from, and where
`qemu-img commit` without -d aborts): the five-step example in both base
formats, a clone, a revert, a thick volume, two concurrent processes (POSIX
locks through the mount) and kills at every checkpoint of a middle delete.

The GlusterFS volume comes from scripts/gluster-lab when it exists (with its
own lab directory, so that its `stop` touches only this volume), else from
glusterd started here directly. These tests FAIL when GlusterFS cannot be
started: this machine can run them."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

import snapchain as sc
from ansible_collections.blockyard.storage.plugins.module_utils import fileio

VOLUME = 'byt-snap'
HOST = '127.1'                                  # the gluster CLI refuses 127.0.0.1, accepts 127.1
TEST_ROOT = '/var/lib/blockyard-test'
LAB = os.path.join(sc.REPO_ROOT, 'scripts', 'gluster-lab')
LAB_ENV = dict(os.environ, GLUSTER_LAB_DIR=os.path.join(TEST_ROOT, 'lab'), GLUSTER_LAB_HOST=HOST)
BRICK = os.path.join(TEST_ROOT, 'brick')
PID_FILE = os.path.join(TEST_ROOT, 'glusterd.pid')


def _run(argv, env=None, timeout=300):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                          env=env, timeout=timeout, check=False)


def _gluster(*args):
    return _run(['gluster', '--mode=script'] + list(args), timeout=120)


def _glusterd_answers():
    try:
        return _gluster('pool', 'list').returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _must(res, what):
    if res.returncode != 0:
        pytest.fail('%s failed (rc %s):\n%s' % (what, res.returncode, res.stdout[-4000:]), pytrace=False)
    return res


class DirectGluster(object):
    """glusterd + one volume without the lab script (no systemd)."""

    def __init__(self):
        self.glusterd_pid = None

    def start(self):
        if not _glusterd_answers():
            os.makedirs(TEST_ROOT, exist_ok=True)
            _must(_run(['glusterd', '-p', PID_FILE]), 'starting glusterd')
            deadline = time.time() + 60
            while not _glusterd_answers():
                if time.time() > deadline:
                    pytest.fail('glusterd started but does not answer after 60s (see /var/log/glusterfs)',
                                pytrace=False)
                time.sleep(0.5)
            with open(PID_FILE) as handle:
                self.glusterd_pid = int(handle.read().strip())
        if _gluster('volume', 'info', VOLUME).returncode == 0:     # left by an interrupted run
            self._remove_volume()
        shutil.rmtree(BRICK, ignore_errors=True)
        os.makedirs(BRICK)
        _must(_gluster('volume', 'create', VOLUME, '%s:%s' % (HOST, BRICK), 'force'), 'gluster volume create')
        _must(_gluster('volume', 'start', VOLUME), 'gluster volume start')

    def _remove_volume(self):
        _gluster('volume', 'stop', VOLUME, 'force')
        _gluster('volume', 'delete', VOLUME)

    def stop(self):
        self._remove_volume()
        shutil.rmtree(BRICK, ignore_errors=True)
        if self.glusterd_pid:
            try:
                os.kill(self.glusterd_pid, signal.SIGTERM)
            except OSError:
                pass


class LabGluster(object):
    """The volume from scripts/gluster-lab, in a lab directory of its own."""

    def start(self):
        _must(_run([LAB, 'start', VOLUME], env=LAB_ENV, timeout=600), 'scripts/gluster-lab start %s' % VOLUME)
        if not _glusterd_answers():
            pytest.fail('scripts/gluster-lab started %s but glusterd does not answer' % VOLUME, pytrace=False)

    def stop(self):
        _run([LAB, 'stop'], env=LAB_ENV, timeout=600)


def _mounted_type(path):
    return fileio.fs_type(path) if os.path.ismount(path) else None


@pytest.fixture(scope='session')
def gluster_mount():
    """A FUSE mount of the GlusterFS volume, for the whole session."""
    if os.geteuid() != 0:
        pytest.fail('the GlusterFS tests need root (glusterd, FUSE mounts)', pytrace=False)
    use_lab = os.access(LAB, os.X_OK) and not os.environ.get('BLOCKYARD_TEST_GLUSTER_DIRECT')
    server = LabGluster() if use_lab else DirectGluster()
    server.start()
    mount_point = tempfile.mkdtemp(prefix='blockyard-gluster-')
    try:
        _must(_run(['mount', '-t', 'glusterfs', '%s:/%s' % (HOST, VOLUME), mount_point]),
              'mount -t glusterfs %s:/%s' % (HOST, VOLUME))
        deadline = time.time() + 30
        while _mounted_type(mount_point) != 'fuse.glusterfs':
            if time.time() > deadline:
                pytest.fail('%s is not a GlusterFS FUSE mount after mount: %s'
                            % (mount_point, _mounted_type(mount_point)), pytrace=False)
            time.sleep(0.2)
        yield os.path.realpath(mount_point)
    finally:
        sc.remove_mount(mount_point)
        server.stop()


@pytest.fixture
def gdir(gluster_mount):
    """A fresh directory on the GlusterFS mount."""
    path = tempfile.mkdtemp(prefix='t-', dir=gluster_mount)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_mount_is_glusterfs_fuse(gdir):
    assert fileio.fs_type(gdir) == 'fuse.glusterfs'


@pytest.mark.parametrize('base_fmt', ['raw', 'qcow2'])
def test_five_step_on_gluster(gdir, base_fmt):
    sc.five_step(gdir, base_fmt)


@pytest.mark.parametrize('base_fmt', ['raw', 'qcow2'])
def test_clone_on_gluster(gdir, base_fmt):
    sc.clone_scenario(gdir, base_fmt)


def test_revert_on_gluster(gdir):
    sc.revert_scenario(gdir)


def test_thick_volume_on_gluster(gdir):
    """FUSE: no fallocate shortcut, the zeros are written."""
    changed, result, _diff = sc.volume(gdir, 'thick', size='4M', provisioning='thick')
    assert changed and result['volume']['provisioning'] == 'thick'
    path = os.path.join(gdir, 'volume-thick')
    assert os.path.getsize(path) == sc.VOL_SIZE and os.stat(path).st_blocks * 512 >= sc.VOL_SIZE
    assert not sc.pattern_problems(path, 'raw', [(0, 0, sc.VOL_SIZE)])
    sc.snapshot(gdir, 'thick', 's')
    changed, _result, _diff = sc.volume(gdir, 'thick', size='8M')
    assert changed
    sc.snapshot(gdir, 'thick', 's', state='absent')
    assert os.path.getsize(path) == 8 * sc.MIB


def test_two_processes_on_gluster(gdir, tmp_path):
    """The volume lock is a POSIX lock on the mount: two processes serialize."""
    sc.volume(gdir, 'V', size='4M')
    print(sc.concurrent_snapshots(gdir, str(tmp_path), 10, 'gluster'))


def test_kill_during_middle_delete_on_gluster(gluster_mount):
    """Kills at every checkpoint of a middle snapshot delete, then re-runs."""
    import test_crash
    workdir = tempfile.mkdtemp(prefix='crash-', dir=gluster_mount)
    try:
        op = test_crash.OPS_BY_NAME['snapshot-delete-middle']
        directory = os.path.join(workdir, 'discover')
        os.mkdir(directory)
        ctx = op.setup(directory)
        with sc.recorded_checkpoints() as hits:
            getattr(sc.volumes, op.func)(op.params(directory), False)
        op.verify(directory, ctx)
        problems = []
        for name, skip in sc.kill_points(hits):
            for path in ('A', 'B'):
                problems += test_crash.kill_and_check(workdir, op, name, skip, path)
        assert not problems, '\n'.join(problems)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
