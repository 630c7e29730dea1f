# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registry of backends (backends/__init__.py): names, an unknown
backend, a backend whose library is missing on the host, and the module
files of a backend's package (which the crash harness reads)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import importlib
import importlib.abc
import importlib.util
import os
import sys

import pytest

from ansible_collections.blockyard.storage.plugins.module_utils import backends, volumes
from ansible_collections.blockyard.storage.plugins.module_utils.backends.base import CAPABILITIES, Backend
from ansible_collections.blockyard.storage.plugins.module_utils.errors import (
    InvalidInput, MissingDependency, StorageError, Unsupported)

PREFIX = 'ansible_collections.blockyard.storage.plugins.module_utils.backends.'


def make_entry(module, package, cls='FakeBackend'):
    """A REGISTRY entry in the registry's own shape: (module, package) for a
    package exporting BACKEND, or (module, class, package)."""
    if len(backends.REGISTRY['file']) == 2:
        return (module, package)
    return (module, cls, package)


@pytest.fixture
def registry_entry():
    """Register fake entries for a test; removed (and their failed imports
    forgotten) afterwards."""
    added = []

    def add(name, entry):
        assert name not in backends.REGISTRY
        backends.REGISTRY[name] = entry
        added.append(name)
    yield add
    for name in added:
        module = backends.REGISTRY.pop(name)[0]
        sys.modules.pop(PREFIX + module, None)


def test_names_and_file():
    assert 'file' in backends.names()
    assert backends.names() == sorted(backends.REGISTRY)
    cls = backends.get('file')
    assert issubclass(cls, Backend) and cls.kind == 'file'
    assert cls.capabilities <= CAPABILITIES
    assert backends.get('file') is cls


def test_rbd_is_registered():
    """The rbd package imports without the Ceph bindings (they are needed
    when a location is opened, with one message naming them)."""
    cls = backends.get('rbd')
    assert issubclass(cls, Backend) and cls.kind == 'rbd'
    assert cls.capabilities <= CAPABILITIES
    assert 'python3-rados' in backends.REGISTRY['rbd'][1]


@pytest.mark.parametrize('name', ['zfs', 'RBD', 'File', '', None, 'file '])
def test_unknown_backend(name):
    with pytest.raises(InvalidInput) as caught:
        backends.get(name)
    msg = caught.value.msg
    assert repr(name) in msg
    for available in backends.names():
        assert available in msg


def test_unknown_backend_through_a_task(tmp_path):
    params = dict(backend='nfs', volume_dir=str(tmp_path), name='v', size='1M', state='present')
    with pytest.raises(InvalidInput) as caught:
        volumes.ensure_volume(params, False)
    assert 'nfs' in caught.value.msg and 'file' in caught.value.msg
    assert os.listdir(str(tmp_path)) == []


def test_a_backend_whose_library_is_missing(registry_entry):
    """A backend module that imports a library the host lacks: one clear
    MissingDependency naming the package to install (no ImportError), and
    the other backends are not affected."""
    registry_entry('fakerbd', make_entry('fakerbd_missing_module', 'python3-rbd (rbd, rados)'))
    with pytest.raises(MissingDependency) as caught:
        backends.get('fakerbd')
    exc = caught.value
    assert isinstance(exc, StorageError)
    assert 'python3-rbd (rbd, rados)' in exc.msg and 'fakerbd' in exc.msg
    assert exc.details.get('backend') == 'fakerbd'
    assert 'fakerbd' in backends.names()
    assert backends.get('file').kind == 'file'


class _FakeBackendModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Backend modules that exist only in memory (nothing is written under
    plugins/): {module name below backends/: source}."""

    def __init__(self, sources):
        self.sources = dict((PREFIX + k, v) for k, v in sources.items())

    def find_spec(self, fullname, path=None, target=None):
        if fullname in self.sources:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        exec(compile(self.sources[module.__name__], '<fake %s>' % module.__name__, 'exec'), module.__dict__)


@pytest.fixture
def fake_modules():
    finders = []

    def install(sources):
        finder = _FakeBackendModules(sources)
        sys.meta_path.insert(0, finder)
        finders.append(finder)
    yield install
    for finder in finders:
        sys.meta_path.remove(finder)
        for name in finder.sources:
            sys.modules.pop(name, None)


def test_a_backend_module_that_imports_a_missing_library(registry_entry, fake_modules, tmp_path):
    """The backend's module is there and fails on its library (as `import
    rbd` does on a host without python3-rbd)."""
    fake_modules({'zz_fake_missing_lib': 'import blockyard_no_such_library_xyz  # noqa\n'
                                         'class FakeBackend(object):\n    kind = "fakelib"\nBACKEND = FakeBackend\n'})
    registry_entry('fakelib', make_entry('zz_fake_missing_lib', 'python3-blockyard-xyz'))
    with pytest.raises(MissingDependency) as caught:
        backends.get('fakelib')
    msg = caught.value.msg
    assert 'python3-blockyard-xyz' in msg and 'blockyard_no_such_library_xyz' in msg and 'fakelib' in msg
    # a task names it too, fails cleanly and writes nothing
    params = dict(backend='fakelib', volume_dir=str(tmp_path), name='v', size='1M', state='present')
    with pytest.raises(MissingDependency):
        volumes.ensure_volume(params, False)
    assert os.listdir(str(tmp_path)) == []
    # once the library is there, the same entry loads
    sys.modules.pop(PREFIX + 'zz_fake_missing_lib', None)
    fake_modules({'zz_fake_missing_lib': 'class FakeBackend(object):\n    kind = "fakelib"\nBACKEND = FakeBackend\n'})
    assert backends.get('fakelib').kind == 'fakelib'


def test_missing_library_message_outside_ansible_mentions_the_package():
    text = backends.missing_library_message('x', 'pkg-x', ImportError('No module named x'))
    assert 'pkg-x' in text and 'No module named x' in text


def test_modules_of_file_lists_the_package_files():
    files = backends.modules_of('file')
    directory = os.path.dirname(sys.modules[backends.get('file').__module__].__file__)
    assert files == sorted(files)
    assert all(os.path.isabs(f) and f.endswith('.py') and os.path.dirname(f) == directory for f in files)
    names = [os.path.basename(f) for f in files]
    for expected in ('__init__.py', 'backend.py', 'bookkeeping.py', 'layout.py', 'recovery.py', 'snapshots.py',
                     'state.py'):
        assert expected in names, names
    assert sorted(names) == sorted(f for f in os.listdir(directory) if f.endswith('.py'))


def test_modules_of_unknown_backend():
    with pytest.raises((InvalidInput, KeyError)):
        backends.modules_of('nothere')


def test_require_capability_on_the_contract():
    class Partial(Backend):
        kind = 'partial'
        capabilities = frozenset(['qcow2'])
    backend = Partial()
    backend.require_capability('qcow2', 'A qcow2 volume')
    for cap in sorted(CAPABILITIES - Partial.capabilities):
        with pytest.raises(Unsupported) as caught:
            backend.require_capability(cap, 'Doing it')
        assert 'partial' in caught.value.msg and cap in caught.value.msg
        assert caught.value.details == {'backend': 'partial', 'capability': cap}
