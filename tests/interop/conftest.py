# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The interop stage: the collection's core (in-process, like
tests/functional) and OpenStack Cinder's own NfsDriver (in its own venv,
through cinder_driver.py) on the same directories. See
docs/cinder-interop.md.

tests/conftest.py makes ``ansible_collections.blockyard.storage``
importable; this one puts this directory (interop.py) and tests/functional
(the data patterns of snapchain) on sys.path and provides the Cinder
fixtures: one long-running driver per share, for the whole session."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import shutil
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
FUNCTIONAL = os.path.join(os.path.dirname(HERE), 'functional')

for _path in (FUNCTIONAL, HERE):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from interop import Cinder  # noqa: E402


@pytest.fixture(scope='session')
def interop_root():
    """Scratch space shared by the Cinder fixtures. Not /dev/shm: Cinder
    treats any path under /dev/ as a block device (qemu-img convert then
    insists that the destination exists before it is made)."""
    path = os.path.realpath(tempfile.mkdtemp(prefix='blockyard-interop-'))
    # cinder-volume's unprivileged user must be able to reach the files
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _cinder(interop_root, name, qcow2=False):
    cinder = Cinder(os.path.join(interop_root, name), '127.0.0.1:/interop-%s' % name, qcow2=qcow2)
    try:
        yield cinder
    finally:
        cinder.close()


@pytest.fixture(scope='session')
def cinder(interop_root):
    """Cinder NfsDriver, raw sparse volumes, on the share the mixed timelines use."""
    yield from _cinder(interop_root, 'mixed')


@pytest.fixture(scope='session')
def cinder_ref(interop_root):
    """The same driver on another share: the Cinder-only run of the same steps."""
    yield from _cinder(interop_root, 'reference')


@pytest.fixture(scope='session')
def cinder_qcow2(interop_root):
    """Cinder NfsDriver with nfs_qcow2_volumes=True."""
    yield from _cinder(interop_root, 'qcow2', qcow2=True)
