# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Make ``ansible_collections.blockyard.storage`` importable for plain pytest.

Shared by tests/unit and tests/functional. Under ``ansible-test units`` the
collection is already importable and nothing is done. With
``python3 -m pytest tests/unit tests/functional`` from the repository root (which
is the collection root), a temporary ``ansible_collections/blockyard/storage``
symlink to the repository is put on sys.path for the session.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import atexit
import importlib
import os
import shutil
import sys
import tempfile

COLLECTION = 'ansible_collections.blockyard.storage'
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _importable():
    try:
        importlib.import_module(COLLECTION + '.plugins.module_utils')
    except ImportError:
        return False
    return True


def _setup():
    if _importable():
        return
    real = os.path.realpath(REPO_ROOT)
    parts = real.split(os.sep)
    if parts[-3:] == ['ansible_collections', 'blockyard', 'storage']:
        # Already laid out as a collection tree: put its parent on the path.
        sys.path.insert(0, os.sep.join(parts[:-3]) or os.sep)
    else:
        tmp = tempfile.mkdtemp(prefix='blockyard-unit-')
        atexit.register(shutil.rmtree, tmp, True)  # removes the symlink, never its target
        namespace = os.path.join(tmp, 'ansible_collections', 'blockyard')
        os.makedirs(namespace)
        os.symlink(real, os.path.join(namespace, 'storage'))
        sys.path.insert(0, tmp)
    importlib.invalidate_caches()


_setup()
