# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Functional tests: the core against real qemu-img / qemu-io (and real
XFS and GlusterFS where a test says so), no mocks.

tests/conftest.py makes ``ansible_collections.blockyard.storage`` importable;
this one puts this directory on sys.path so that the tests can import their
helpers (``snapchain``)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import shutil
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


if HERE not in sys.path:
    sys.path.insert(0, HERE)


@pytest.fixture
def vdir(tmp_path):
    """An empty volume directory (absolute, real path)."""
    path = tmp_path / 'volumes'
    path.mkdir()
    return os.path.realpath(str(path))


def _memory_base():
    """/dev/shm when it is a tmpfs (fsync is free there), else None."""
    from ansible_collections.blockyard.storage.plugins.module_utils import fileio
    if os.path.isdir('/dev/shm') and os.access('/dev/shm', os.W_OK) and fileio.fs_type('/dev/shm') == 'tmpfs':
        return '/dev/shm'
    return None


@pytest.fixture
def fast_vdir(tmp_path):
    """An empty volume directory on tmpfs where there is one (for the many
    small chains of the order tests: the semantics do not depend on the
    filesystem, and fsync costs dominate on a disk), else like vdir."""
    base = _memory_base()
    if base is None:
        path = tmp_path / 'volumes'
        path.mkdir()
        yield os.path.realpath(str(path))
        return
    path = tempfile.mkdtemp(prefix='blockyard-functional-', dir=base)
    try:
        yield os.path.realpath(path)
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope='module')
def fast_root(tmp_path_factory):
    """A module-wide scratch directory, on tmpfs where there is one."""
    base = _memory_base()
    if base is None:
        yield str(tmp_path_factory.mktemp('fast'))
        return
    path = tempfile.mkdtemp(prefix='blockyard-functional-', dir=base)
    try:
        yield os.path.realpath(path)
    finally:
        shutil.rmtree(path, ignore_errors=True)


def pytest_sessionfinish(session, exitstatus):
    """Stop the Ceph lab if this session started it (cephlab.ensure)."""
    import cephlab
    cephlab.stop_if_started()
