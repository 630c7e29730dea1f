# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r'''
options:
  backend:
    description:
      - The backend that holds the volumes. V(file) keeps each volume as files (raw or qcow2, with a qcow2 snapshot
        chain) in a local directory or on a mounted NFS/GlusterFS share, in the layout of Cinder's NFS and GlusterFS
        drivers (C(volume-<name>), C(volume-<name>.info)), so existing Cinder shares can be adopted; its location
        options are described with it.
      - V(rbd) keeps each volume as a raw, thin RBD image C(volume-<name>) in a Ceph pool (O(pool), O(namespace)),
        with Cinder's RBD semantics (snapshots are protected RBD snapshots, copies are clones flattened at
        O(max_clone_depth), a volume whose copies still depend on it goes to the pool's trash until the last of
        them is deleted). It needs the Ceph Python bindings (python3-rados, python3-rbd) on the managed host and the
        connection options O(ceph_conf), O(ceph_user), O(ceph_keyring).
      - V(lvm) keeps each volume as a raw logical volume C(volume-<name>) of an LVM volume group (O(vg)), thick or
        thin (O(lvm_type), O(thin_pool)), with Cinder's LVM semantics (snapshots made with C(lvcreate -s), revert
        by merging the latest thick snapshot, O(volume_clear)). It needs lvm2 (and thin-provisioning-tools for thin
        pools) on the managed host, and is exported through an iSCSI target.
      - Every backend implements the same contract, so the modules, their results and check mode behave the same
        for each; what only one backend has is returned under C(details).
    type: str
    default: file
    choices: [file, rbd, lvm]
'''

    PLACEMENT = r'''
options:
  max_over_subscription_ratio:
    description:
      - Placement limit for a new volume on shares (also with a single share). The provisioned bytes of a share
        (sizes of all its volumes plus the new one) divided by its total size may not exceed this ratio. Must be
        greater than 0.
      - Defaults to C(1.0) for thick and C(20.0) for thin volumes. With O(volume_dir) no limit applies unless this
        or O(reserved_percentage) is set.
    type: float
  reserved_percentage:
    description:
      - Percentage of each share's total size kept free (0 up to, not including, 100). Placement counts only the
        free space above it.
    type: float
    default: 0.0
'''
