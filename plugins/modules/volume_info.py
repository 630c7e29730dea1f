#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: volume_info
short_description: List volumes, their qcow2 chains and snapshots, and backend capacity
version_added: 0.1.0
description:
  - Lists the volumes of a backend location (all, or one by O(name)) with format, sizes, active file, the qcow2
    chain (file, backing file, format, allocated bytes) and the snapshots of C(volume-<name>.info).
  - Chains are read with the collection's own qcow2 header reader (one small read per file, no qemu-img process)
    under the same image-safety checks as every other module. A volume that fails them is listed with an C(error)
    key instead of its details (and fails the task when asked for by O(name)).
  - On the V(rbd) backend it lists the images C(volume-<name>) of the pool (namespace) with their snapshots
    (protection, the volumes cloned from each), parent and features, and the pool's capacity from the cluster's
    C(df) and the pool quota.
  - Reports capacity per location (share, directory or pool) and in total; takes no lock and writes nothing.
author:
  - Blockyard storage team (@blockyard)
extends_documentation_fragment:
  - blockyard.storage.location
  - blockyard.storage.file
  - blockyard.storage.rbd
  - blockyard.storage.lvm
  - blockyard.storage.ceph
  - blockyard.storage.attributes.info_module
requirements:
  - Nothing beyond Python on the managed host (qcow2 headers are read by the collection itself).
options:
  name:
    description: Report only this volume. Without it, every volume of the location.
    type: str
  format:
    description:
      - With O(name) only, the format of that volume when it was adopted from a Cinder share and has no C(.meta)
        record yet (nothing is written here; M(blockyard.storage.volume) records it). A directory may hold raw and qcow2
        volumes side by side, so one format is never applied to all of them.
    type: str
    choices: [raw, qcow2]
seealso:
  - module: blockyard.storage.volume
'''

EXAMPLES = r'''
- name: Every volume in a directory
  blockyard.storage.volume_info:
    volume_dir: /srv/volumes
  register: vols

- name: Show one volume's chain
  ansible.builtin.debug:
    var: vols.volumes_by_name.db01.details.chain

- name: Capacity of each share in a shares file
  blockyard.storage.volume_info:
    shares_config: /etc/blockyard/shares.conf
  register: pool

- name: One volume
  blockyard.storage.volume_info:
    name: db01
    volume_dir: /srv/volumes
  register: db01
'''

RETURN = r'''
volumes:
  description:
    - One entry per volume, with the keys of the C(volume) result of M(blockyard.storage.volume) (the same for every
      backend, backend-only facts under C(details)).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Volume name.
      type: str
    backend:
      description: Backend kind.
      type: str
    location:
      description: Where the volume lives.
      type: str
    state:
      description: V(present).
      type: str
    format:
      description: Format of the volume's data.
      type: str
    provisioning:
      description: V(thin) or V(thick).
      type: str
    size_bytes:
      description: Size of the volume.
      type: int
    allocated_bytes:
      description: Bytes allocated by the volume and its snapshots.
      type: int
    snapshots:
      description:
        - Snapshots oldest first, with C(name), C(size_bytes), C(pending) (an interrupted operation affects it, its
          data may already be merged away) and C(details).
      type: list
      elements: dict
    managed:
      description: Whether the collection has a record of the volume (false for a Cinder volume not adopted yet).
      type: bool
    pending_operation:
      description:
        - An interrupted operation recorded for the volume (C(op), its fields and C(journal)), or null; the next task
          on the volume completes it. With an C(error) key when its record is not valid.
      type: dict
    details:
      description:
        - Backend-only facts (file backend, C(directory), C(path), C(active_file), C(active_format),
          C(virtual_bytes), C(snapshot_map), C(chain)).
      type: dict
    error:
      description: Why the volume could not be read (only for such volumes; the others are listed as usual).
      type: str
volumes_by_name:
  description: The same entries keyed by name.
  returned: always
  type: dict
volume:
  description: The entry of O(name) (null when it does not exist).
  returned: when O(name) is given
  type: dict
capacity:
  description: Totals over every location read.
  returned: always
  type: dict
  contains:
    total_bytes:
      description: Size of the locations.
      type: int
    free_bytes:
      description: Bytes available to non-root users.
      type: int
    used_bytes:
      description: Bytes in use.
      type: int
    allocated_bytes:
      description:
        - Bytes allocated by volumes (copies in flight and leftovers included). Null when O(name) is given, because
          reading one volume does not read the others.
      type: int
    provisioned_bytes:
      description: Sum of the volumes' sizes. Null when O(name) is given.
      type: int
    apparent_over_subscription:
      description: provisioned_bytes / total_bytes.
      type: float
locations:
  description:
    - The same capacity figures per location (share, directory, pool), with C(location) and C(details) (file
      backend, C(directory)).
  returned: always
  type: list
  elements: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.blockyard.storage.plugins.module_utils import common, volumes


def main():
    module = AnsibleModule(
        argument_spec=common.location_args(
            name=dict(type='str'),
            format=dict(type='str', choices=['raw', 'qcow2']),
        ),
        mutually_exclusive=common.LOCATION_EXCLUSIVE,
        supports_check_mode=True,
    )
    common.run(module, lambda params, check_mode: volumes.volume_info(params))


if __name__ == '__main__':
    main()
