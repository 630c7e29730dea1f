#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: snapshot
short_description: Create, delete and revert to snapshots of volumes
version_added: 0.1.0
description:
  - On the V(file) backend a snapshot is a qcow2 overlay C(volume-<volume>.<name>) whose backing file (stored as a
    bare name, with an explicit backing format) is the volume's previous active file; the overlay becomes the
    active file and C(volume-<volume>.info) maps the snapshot to it, exactly as Cinder's GlusterFS/NFS drivers do.
    The snapshot's data is the overlay's backing file.
  - Deleting a snapshot merges data with C(qemu-img commit -d) in every position of the chain. Deleting a
    snapshot that is not the latest commits its overlay into the file below and re-points the file above, so every
    other snapshot keeps its point in time (the fix of Cinder bug 1468445). Deleting the last snapshot returns the
    volume to its base file and format.
  - V(reverted) discards what was written since the snapshot (latest snapshot only, as in Cinder); it reports no
    change when nothing was written since.
  - On the V(rbd) backend a snapshot is the protected RBD snapshot C(snapshot-<name>) of the image
    C(volume-<volume>). Deleting it first flattens the volumes made from it. V(reverted) rolls the image back to
    any of its snapshots (then grows it back to the volume's size), with no change when its data equals the
    snapshot's.
  - Operations are locked per volume and journaled, so a run killed at any point is completed by the next run.
author:
  - Blockyard storage team (@blockyard)
extends_documentation_fragment:
  - blockyard.storage.location
  - blockyard.storage.file
  - blockyard.storage.rbd
  - blockyard.storage.lvm
  - blockyard.storage.ceph
  - blockyard.storage.file.ownership
  - blockyard.storage.attributes
requirements:
  - qemu-img (Debian/Ubuntu package qemu-utils) on the managed host.
options:
  volume:
    description: Name of the volume.
    type: str
    required: true
  name:
    description:
      - Snapshot name, with the rules of volume names (letters, digits, C(_) and C(-), no dots). C(info), C(meta),
        C(lock), C(journal), C(active) and C(part) are reserved.
    type: str
    required: true
  state:
    description:
      - V(present) creates the snapshot, V(absent) deletes it (a snapshot that does not exist is success),
        V(reverted) makes the volume's data equal to the snapshot's.
    type: str
    default: present
    choices: [present, absent, reverted]
notes:
  - Supports check mode and diff mode (the diff shows the volume's snapshots before and after).
  - The volume must not be in use by a running guest or served as a LUN; online snapshots are not supported. On
    the V(file) backend a snapshot, revert or delete is refused (Busy, naming the process) while a process of the
    host holds a file of the volume open; on V(rbd), while the image has watchers.
seealso:
  - module: blockyard.storage.volume
'''

EXAMPLES = r'''
- name: Snapshot a volume
  blockyard.storage.snapshot:
    volume: db01
    name: nightly
    volume_dir: /srv/volumes

- name: Undo everything written since
  blockyard.storage.snapshot:
    volume: db01
    name: nightly
    state: reverted
    volume_dir: /srv/volumes

- name: Delete it (its data is merged, other snapshots keep theirs)
  blockyard.storage.snapshot:
    volume: db01
    name: nightly
    state: absent
    volume_dir: /srv/volumes

- name: Snapshot an RBD volume (protected RBD snapshot volume-db02@snapshot-nightly)
  blockyard.storage.snapshot:
    volume: db02
    name: nightly
    backend: rbd
    pool: volumes
'''

RETURN = r'''
snapshot:
  description:
    - The snapshot after the task (in check mode, as it would be); the same keys for every backend, what only one
      backend has under C(details). Only name, volume, location and state when absent.
  returned: always
  type: dict
  contains:
    name:
      description: Snapshot name.
      type: str
      sample: nightly
    volume:
      description: Volume name.
      type: str
      sample: db01
    state:
      description: V(present), V(reverted) or V(absent).
      type: str
    location:
      description: Where the volume lives (the share, or the directory).
      type: str
    size_bytes:
      description: Size of the snapshot's point in time.
      type: int
    dependent:
      description: Whether something outside the volume depends on the snapshot.
      type: bool
    pending:
      description: Whether an interrupted operation affects the snapshot.
      type: bool
    details:
      description:
        - Backend-only facts. File backend, C(overlay) (the file the C(.info) map names), C(overlay_path),
          C(data_file) (the file holding the point in time), C(stale) and C(snapshot_map) (the volume's C(.info)
          map).
      type: dict
location:
  description: Where the volume lives.
  returned: always
  type: str
actions:
  description: What the task did (or would do), in order.
  returned: always
  type: list
  elements: str
diff:
  description: The volume's snapshots before and after (and, for a revert, what it discards).
  returned: always
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.blockyard.storage.plugins.module_utils import common, volumes


def main():
    module = AnsibleModule(
        argument_spec=common.location_args(
            ownership=True,
            volume=dict(type='str', required=True),
            name=dict(type='str', required=True),
            state=dict(type='str', default='present', choices=['present', 'absent', 'reverted']),
        ),
        mutually_exclusive=common.LOCATION_EXCLUSIVE,
        supports_check_mode=True,
    )
    common.run(module, volumes.ensure_snapshot)


if __name__ == '__main__':
    main()
