#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: volume
short_description: Create, grow, copy and delete block volumes
version_added: 0.1.0
description:
  - Manages a volume the way Cinder's NFS/GlusterFS drivers do, without OpenStack. With O(backend=file) a volume is
    the file C(volume-<name>) (sparse or fully allocated raw, or qcow2) in a local directory or on a mounted share;
    its snapshots (M(blockyard.storage.snapshot)) are qcow2 overlays listed in C(volume-<name>.info).
  - The collection records each volume's format, size and provisioning in C(volume-<name>.meta) so that a format is
    never probed from data a guest controls; a volume adopted from a Cinder share has no record until the first
    run, where O(format) states its format.
  - Every image is checked in Python before qemu-img touches it (qcow2 backing files only inside the volume's own
    chain, no external data files or unknown features, virtual size within the recorded size).
  - Every operation holds a POSIX lock on C(volume-<name>.lock), which also serializes hosts sharing a share;
    multi-step operations keep an intent journal so that an interrupted run is completed by the next one.
author:
  - Blockyard storage team (@blockyard)
extends_documentation_fragment:
  - blockyard.storage.location
  - blockyard.storage.location.placement
  - blockyard.storage.file
  - blockyard.storage.rbd
  - blockyard.storage.lvm
  - blockyard.storage.ceph
  - blockyard.storage.file.ownership
  - blockyard.storage.attributes
requirements:
  - qemu-img (Debian/Ubuntu package qemu-utils) on the managed host, for qcow2 volumes, snapshots and copies.
options:
  name:
    description:
      - Volume name. Letters, digits, C(_) and C(-), starting with a letter or digit, at most 200 characters.
      - No dots, because in the file layout a dot separates volume, snapshot and bookkeeping parts of a file name
        (C(volume-<name>.<snapshot>), C(volume-<name>.info)), so a name with a dot could be another volume's file.
    type: str
    required: true
  state:
    description:
      - V(present) creates the volume, or grows it to O(size). V(absent) deletes every file of the volume.
    type: str
    default: present
    choices: [present, absent]
  size:
    description:
      - Size as an integer number of GiB, or a string with a unit (C(B), C(K), C(M), C(G), C(T); binary multiples),
        such as C(512M) or C(10G).
      - Required to create a volume from nothing; a copy defaults to its source's size.
      - A larger size than the current one extends the volume (its active file); a smaller one is refused.
      - When another tool grew the volume beyond its recorded size (Cinder's extend, or Cinder's whole-GiB snapshot
        overlays), every module refuses it until the size is restated here at or above the grown size; the task then
        records that size (with a warning).
    type: raw
  format:
    description:
      - On-disk format of the volume's base file. New volumes are V(raw) when it is not set.
      - An existing volume keeps its recorded format; setting another one is an error (no conversion in place).
      - For a volume adopted from a Cinder share (no C(.meta) record yet) it states the format and records it. Without
        it, such a volume is read as V(raw) when its file does not start with a qcow2 header, and with the format its
        snapshot overlays record when it has snapshots; a base file with a qcow2 header and no snapshots must be
        adopted once with O(format) (V(qcow2) for a Cinder qcow2 volume, V(raw) when a guest wrote that header).
    type: str
    choices: [raw, qcow2]
  provisioning:
    description:
      - V(thin) makes a sparse raw file; V(thick) a raw file fully allocated with zeros (fallocate where the
        filesystem guarantees zeros, written zeros elsewhere). qcow2 volumes are created with
        C(preallocation=metadata) either way. New volumes are V(thin) when it is not set.
      - With O(backend=lvm), V(thin) makes a thin LV in O(thin_pool) and V(thick) a plain LV, zeroed when it is made;
        when it is not set, new volumes are of the kind O(lvm_type) names.
      - An existing volume keeps its recorded provisioning; a different value gives a warning (no conversion in
        place).
    type: str
    choices: [thin, thick]
  force:
    description:
      - With O(state=absent), delete a volume that has snapshots, with its whole chain.
    type: bool
    default: false
  source_volume:
    description:
      - Create the volume as a copy of this volume (same location). Without O(source_snapshot) this is a clone of
        its current data (a reflink on XFS/btrfs for raw volumes, else through a temporary snapshot
        C(tmp-snap-<name>)). Both volumes are locked, always in the same order. A failed copy leaves the source exactly
        as it was.
    type: str
  source_snapshot:
    description:
      - With O(source_volume), create the volume from this snapshot's point in time.
    type: str
  source_location:
    description:
      - Where O(source_volume) is, when it is not in this task's location; a dict of the location options of its
        backend, for example C({backend=file, volume_dir=/srv/volumes}) or C({backend=rbd, pool=images}) (written
        as YAML mappings in a task).
        Options left out take their defaults (not this task's values).
      - A copy across backends reads the source's data through qemu-img (a file volume with snapshots is read at
        its current point in time through a temporary snapshot; an RBD volume through a temporary RBD snapshot)
        and writes the guest data, never a qcow2 container, into the new volume.
      - Between two RBD locations of one cluster the copy is a clone.
    type: dict
  source_image:
    description:
      - Absolute path of a local raw or qcow2 image to copy into the new volume (converted to O(format), grown to
        O(size)). A qcow2 image with a backing file, an external data file or unknown features is refused.
    type: path
  source_image_format:
    description:
      - Format of O(source_image). By default an image that starts with the qcow2 magic is read as qcow2 (with the
        checks above) and anything else as raw.
    type: str
    choices: [raw, qcow2]
notes:
  - Supports check mode (nothing is written, not even a lock file) and diff mode.
  - A copy is placed beside its source when that location passes the placement limits, else in the location that
    passes them best, so a copy can go from one share to another.
seealso:
  - module: blockyard.storage.volume_info
  - module: blockyard.storage.snapshot
  - module: blockyard.storage.share_mount
'''

EXAMPLES = r'''
- name: A 10 GiB sparse raw volume in a local directory
  blockyard.storage.volume:
    name: db01
    size: 10
    volume_dir: /srv/volumes

- name: A thick raw volume owned by qemu
  blockyard.storage.volume:
    name: logs
    size: 512M
    provisioning: thick
    owner: libvirt-qemu
    group: kvm
    volume_dir: /srv/volumes

- name: A qcow2 volume on a mounted GlusterFS share
  blockyard.storage.volume:
    name: vm7-root
    size: 40G
    format: qcow2
    share: gluster1:/volumes

- name: Place a volume on whichever share has the most room
  blockyard.storage.volume:
    name: scratch
    size: 100
    shares_config: /etc/blockyard/shares.conf

- name: Grow it
  blockyard.storage.volume:
    name: db01
    size: 20
    volume_dir: /srv/volumes

- name: A volume from a snapshot, larger than the original
  blockyard.storage.volume:
    name: db01-restore
    source_volume: db01
    source_snapshot: nightly
    size: 30
    volume_dir: /srv/volumes

- name: A volume from an image file
  blockyard.storage.volume:
    name: web-root
    source_image: /srv/images/debian-12.qcow2
    size: 20G
    volume_dir: /srv/volumes

- name: A 10 GiB thin volume as a logical volume (volume-app01) in the thin pool cinder-volumes-pool
  blockyard.storage.volume:
    name: app01
    size: 10G
    backend: lvm
    vg: cinder-volumes
    lvm_type: thin

- name: Delete a thick LVM volume, overwriting it with zeros first
  blockyard.storage.volume:
    name: old01
    state: absent
    backend: lvm
    vg: cinder-volumes
    volume_clear: zero

- name: Delete a volume and its snapshots
  blockyard.storage.volume:
    name: scratch
    state: absent
    force: true
    shares_config: /etc/blockyard/shares.conf

- name: A 20 GiB volume as an RBD image (volume-db02) in the pool volumes
  blockyard.storage.volume:
    name: db02
    size: 20G
    backend: rbd
    pool: volumes
    ceph_user: cinder
  vars:
    ansible_python_interpreter: /usr/bin/python3   # where python3-rados and python3-rbd are

- name: Copy a file volume into the pool (the guest data, not a qcow2 container)
  blockyard.storage.volume:
    name: web01
    backend: rbd
    pool: volumes
    source_volume: web01
    source_location:
      backend: file
      volume_dir: /srv/volumes
'''

RETURN = r'''
volume:
  description:
    - The volume after the task (in check mode, as it would be). The keys are the same for every backend; what only
      one backend has is under C(details). Only name, backend, location and state when absent.
  returned: always
  type: dict
  contains:
    name:
      description: Volume name.
      type: str
      sample: db01
    state:
      description: V(present) or V(absent).
      type: str
      sample: present
    backend:
      description: Backend kind.
      type: str
      sample: file
    location:
      description: Where the volume lives (the share, the directory, or the pool).
      type: str
      sample: gluster1:/volumes
    format:
      description: Format of the volume's data (of its base file for O(backend=file)).
      type: str
      sample: raw
    provisioning:
      description: V(thin) or V(thick).
      type: str
      sample: thin
    size_bytes:
      description: Size of the volume in bytes.
      type: int
      sample: 10737418240
    allocated_bytes:
      description: Bytes allocated by the volume and its snapshots (null in check mode for a new volume).
      type: int
      sample: 4096
    managed:
      description: Whether the collection has a record of the volume (false for a Cinder volume not adopted yet).
      type: bool
    snapshots:
      description:
        - Snapshots, oldest first, each with C(name), C(volume), C(size_bytes) (of its point in time), C(dependent),
          C(pending) (an interrupted operation affects it) and C(details) (file backend, C(overlay), C(overlay_path),
          C(data_file), C(stale); rbd backend, C(rbd_snapshot), C(protected), C(children) (the volumes cloned from
          it), C(id)).
      type: list
      elements: dict
    pending_operation:
      description:
        - The interrupted operation recorded for the volume (C(op), its fields and C(journal)), or null. Any task on
          the volume completes it first; with an C(error) key when its record is not valid.
      type: dict
    details:
      description:
        - Backend-only facts. File backend, C(directory), C(path) (absolute path of the active file, what a
          hypervisor opens), C(active_file), C(active_format), C(virtual_bytes), C(snapshot_map) (the C(.info) map)
          and C(chain) (the files of the qcow2 chain, active first).
        - Rbd backend, C(pool), C(namespace), C(image) (C(volume-<name>)), C(id), C(features), C(object_size_bytes),
          C(parent) (C(pool), C(namespace), C(image), C(snapshot), C(id) of the image it is a clone of, or null) and
          C(copy_snapshots) (snapshots of copies made from it, C(volume-<copy>.clone_snap)).
      type: dict
location:
  description: Where the volume lives (the share, the directory, or the pool as C(pool) or C(pool/namespace)).
  returned: always
  type: str
  sample: gluster1:/volumes
actions:
  description: What the task did (or, in check mode, would do), in order.
  returned: always
  type: list
  elements: str
  sample: ["create sparse raw file volume-db01 of 10G", "record volume db01 (raw, thin, 10G)"]
diff:
  description: The volume's format, size, provisioning, whether it is recorded, and its snapshots before and after.
  returned: always
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.blockyard.storage.plugins.module_utils import common, volumes


def main():
    module = AnsibleModule(
        argument_spec=common.location_args(
            placement=True,
            ownership=True,
            name=dict(type='str', required=True),
            state=dict(type='str', default='present', choices=['present', 'absent']),
            size=dict(type='raw'),
            format=dict(type='str', choices=['raw', 'qcow2']),
            provisioning=dict(type='str', choices=['thin', 'thick']),
            force=dict(type='bool', default=False),
            source_volume=dict(type='str'),
            source_snapshot=dict(type='str'),
            source_location=dict(type='dict'),
            source_image=dict(type='path'),
            source_image_format=dict(type='str', choices=['raw', 'qcow2']),
        ),
        mutually_exclusive=common.LOCATION_EXCLUSIVE + [('source_image', 'source_volume')],
        required_by={'source_snapshot': 'source_volume', 'source_location': 'source_volume'},
        supports_check_mode=True,
    )
    common.run(module, volumes.ensure_volume)


if __name__ == '__main__':
    main()
