# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The single-node Ceph cluster of the functional tests (scripts/ceph-lab):
started on first use, stopped at the end of the session when this session
started it (tests/functional/conftest.py). BLOCKYARD_CEPH_DIR and
BLOCKYARD_CEPH_PORT choose another lab (two checkouts side by side)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import subprocess
import uuid

import snapchain as sc

LAB = os.path.join(sc.REPO_ROOT, 'scripts', 'ceph-lab')
DIR = os.environ.get('BLOCKYARD_CEPH_DIR', '/var/lib/byceph')
PORT = os.environ.get('BLOCKYARD_CEPH_PORT', '6789')
CONF = os.path.join(DIR, 'ceph.conf')
ADMIN_KEYRING = os.path.join(DIR, 'ceph.client.admin.keyring')
USER_KEYRING = os.path.join(DIR, 'ceph.client.blockyard.keyring')
POOL, POOL2 = 'rbd', 'rbd2'
_started = []


def _lab(*args):
    env = dict(os.environ, CEPH_LAB_DIR=DIR, CEPH_LAB_PORT=PORT)
    return subprocess.run([LAB] + list(args), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=600, check=False)


def ensure():
    """The conf path of a running, healthy lab (started if needed)."""
    if os.geteuid() != 0:
        raise RuntimeError('the Ceph lab needs root')
    if _lab('status').returncode != 0:
        res = _lab('start')
        if res.returncode != 0:
            raise RuntimeError('scripts/ceph-lab start failed:\n%s' % res.stdout[-4000:])
        _started.append(True)
    return CONF


def stop_if_started():
    if _started:
        _lab('stop')
        del _started[:]


def params(**extra):
    """The connection options of the lab (admin user)."""
    result = dict(ceph_conf=CONF, ceph_keyring=ADMIN_KEYRING)
    result.update(extra)
    return result


def new_namespace(pool=POOL, prefix='t'):
    """A fresh, empty RBD namespace of the pool (one per test)."""
    import rbd
    from ansible_collections.blockyard.storage.plugins.module_utils import ceph
    name = '%s-%s' % (prefix, uuid.uuid4().hex[:10])
    cluster = ceph.Cluster.get(dict(ceph_conf=CONF, ceph_keyring=ADMIN_KEYRING))
    rbd.RBD().namespace_create(cluster.ioctx(pool), name)
    return name
