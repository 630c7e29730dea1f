# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registry of iSCSI target providers: the `provider` option's values
(iscsi_target) and `target_provider` (export), each mapped to a module of
this package that exports its class as PROVIDER (the contract of
targets/base.py). Imports are lazy and guarded like the backends'."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.blockyard.storage.plugins.module_utils import backends

_PREFIX = 'ansible_collections.blockyard.storage.plugins.module_utils.targets.'

# AnsiballZ ships what the source imports: name every provider module here
_SHIPPED = False
if _SHIPPED:
    from ansible_collections.blockyard.storage.plugins.module_utils.targets import tgt  # noqa: F401
    from ansible_collections.blockyard.storage.plugins.module_utils.targets import lio  # noqa: F401

# name: (module below targets/, what to install when its import fails)
REGISTRY = {
    'tgt': ('tgt', 'tgt (tgtd, tgt-admin, tgtadm); tgt-rbd for RBD LUNs'),
    'lio': ('lio', 'python3-rtslib-fb (and targetcli-fb)'),
}


def names():
    return sorted(REGISTRY)


def get(name):
    """The provider class registered as `name`."""
    return backends.load(_PREFIX, REGISTRY, name, 'PROVIDER', 'target provider')
