# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registry of volume backends: the `backend` option's values, each
mapped to the package that implements the contract of ``backends/base.py``.
Imports are lazy and guarded, so a host without a backend's library (rados,
rbd, rtslib-fb) fails with one message naming the package to install, and
the other backends (and ansible-test's import sanity) are not affected."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import importlib

from ansible_collections.blockyard.storage.plugins.module_utils.errors import InvalidInput, MissingDependency

_PREFIX = 'ansible_collections.blockyard.storage.plugins.module_utils.backends.'

# Ansible ships a module with the module_utils its source imports (AnsiballZ
# reads the imports, it does not run them): name every backend package here,
# inside a branch that never runs, so that the lazy imports below find them on
# the managed host. Add a new backend's package here too.
_SHIPPED = False
if _SHIPPED:
    from ansible_collections.blockyard.storage.plugins.module_utils.backends import file  # noqa: F401
    from ansible_collections.blockyard.storage.plugins.module_utils.backends import lvm  # noqa: F401
    from ansible_collections.blockyard.storage.plugins.module_utils.backends import rbd  # noqa: F401

# name: (package below backends/, what to install when its import fails);
# each package exports its class as BACKEND
REGISTRY = {
    'file': ('file', 'qemu-utils (qemu-img)'),
    'rbd': ('rbd', 'python3-rados and python3-rbd'),
    'lvm': ('lvm', 'lvm2 (and thin-provisioning-tools for thin volumes)'),
}


def names():
    return sorted(REGISTRY)


def get(name):
    """The backend class registered as `name`."""
    return load(_PREFIX, REGISTRY, name, 'BACKEND', 'backend')


def load(prefix, registry, name, attr, what):
    """The class `attr` of the module registered as `name` in `registry`
    (name: (module below prefix, package to install)): an unknown name is
    InvalidInput listing the known ones, a failed import MissingDependency
    naming the package. Shared by the backends and the target providers."""
    if name not in registry:
        raise InvalidInput('Unknown %s %r: the available ones are %s.' % (what, name, ', '.join(sorted(registry))))
    module, package = registry[name]
    try:
        loaded = importlib.import_module(prefix + module)
    except ImportError as exc:
        raise MissingDependency(missing_library_message(name, package, exc, what), **{what.split()[-1]: name})
    return getattr(loaded, attr)


def missing_library_message(name, package, exc, what='backend'):
    try:
        from ansible.module_utils.basic import missing_required_lib
        text = missing_required_lib(package, reason='%s %s' % (what, name))
    except ImportError:     # outside Ansible (unit tests of the core)
        text = 'Failed to import the required Python library (%s) on this host' % package
    return '%s: %s. Install %s on the managed host (it is imported by the Python that runs the module).' % (
        text.rstrip('.'), exc, package)


def modules_of(name):
    """The module files of a backend's package (the crash harness reads its
    checkpoints from them)."""
    import os
    package = importlib.import_module(_PREFIX + REGISTRY[name][0])
    directory = os.path.dirname(package.__file__)
    return sorted(os.path.join(directory, f) for f in os.listdir(directory) if f.endswith('.py'))
