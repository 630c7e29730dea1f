# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):

    # The connection to a Ceph cluster (plugins/module_utils/ceph.py CONNECTION_ARGS).
    DOCUMENTATION = r'''
options:
  ceph_conf:
    description:
      - Path of the cluster's configuration file on the managed host (it names the monitors, C(mon_host), and
        usually the keyring). An absolute path without C(:) or C(@) (qemu's rbd driver reads them as separators).
    type: path
    default: /etc/ceph/ceph.conf
  ceph_user:
    description:
      - The Ceph client to connect as, without or with the C(client.) prefix. It needs the caps of
        C(profile rbd) on the pools the task uses (C(mon 'profile rbd' osd 'profile rbd pool=<pool>')).
    type: str
    default: admin
  ceph_keyring:
    description:
      - Path of the keyring holding the key of O(ceph_user). Without it, the keyring the configuration names (by
        default C(/etc/ceph/<cluster>.client.<user>.keyring)). The key itself is never read into the task's
        result.
    type: path
  cluster_name:
    description: Name of the cluster (the C(<cluster>) of C(/etc/ceph/<cluster>.conf) and its keyrings).
    type: str
    default: ceph
  connect_timeout:
    description:
      - Seconds to wait for the monitors when connecting, and for each monitor operation (1 to 3600). A cluster
        that does not answer within it is an error naming C(mon_host) of O(ceph_conf).
    type: int
    default: 10
requirements:
  - The Ceph Python bindings in the Python that runs the module on the managed host, C(python3-rados) and
    C(python3-rbd) (Debian, Ubuntu, Fedora, EL), so usually C(ansible_python_interpreter=/usr/bin/python3).
'''
