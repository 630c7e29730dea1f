# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):

    # Where the lvm backend keeps volumes (backend=lvm).
    DOCUMENTATION = r'''
options:
  vg:
    description:
      - With O(backend=lvm), the LVM volume group that holds the volumes as logical volumes C(volume-<name>), in the
        layout of Cinder's LVM driver. It must exist (C(vgs) lists the volume groups; create one with C(vgcreate) or
        the role C(lvm_volume_group)). Required with O(backend=lvm).
      - A snapshot is the LV C(volsnap-<volume>.<snapshot>) made with C(lvcreate -s) (LVM reserves LV names that
        start with C(snapshot), and volume and snapshot names hold no dot, so the dot separates them), tagged
        C(blockyard-snap-<size>-<ns>) with the size of its point in time and when it was made. A copy of a volume
        reads from the temporary snapshot C(volclone-<volume>). No other LV of the group is ever touched.
      - Multi-step operations keep a journal (mode 0600) under C(/var/lib/blockyard/lvm/<vg uuid>/) and hold a lock
        file under C(/run/lock/blockyard/lvm/<vg uuid>/) on the managed host; a volume group shared between hosts
        (lvmlockd) is not supported.
      - Volumes are raw block devices C(/dev/<vg>/volume-<name>); the export module makes iSCSI LUNs of them (tgt
        or LIO).
    type: str
  lvm_type:
    description:
      - With O(backend=lvm), the kind of a new volume when the task gives no C(provisioning) (module volume).
      - V(thick) volumes are plain LVs (C(lvcreate -L)), zeroed when they are made (so that they never show what
        the freed extents of a deleted volume held); their snapshots have a copy-on-write area as large as the
        volume; revert is C(lvconvert --merge) of the latest snapshot, which is then made again.
      - V(thin) volumes are thin LVs in the thin pool O(thin_pool); their snapshots and the copies made from them
        are thin snapshots (activated permanently, C(-kn)); revert copies the latest snapshot's data back when it
        differs (it reads both to compare).
      - C(provisioning=thick) or C(provisioning=thin) of the volume module overrides this per volume (a thin one
        needs the thin pool).
    type: str
    choices: [thick, thin]
    default: thick
  thin_pool:
    description:
      - With O(backend=lvm), the thin pool of O(vg) that holds thin volumes. Defaults to C(<vg>-pool), as Cinder's
        C(lvm_type=thin). A full pool (data or metadata at 100%) is refused for new thin volumes and snapshots.
    type: str
  volume_clear:
    description:
      - With O(backend=lvm), V(zero) overwrites a thick volume with zeros before its LV is removed, and the C(-cow)
        device of a thick snapshot before the snapshot is removed (OSSA-2013-021), so that another user of the
        volume group never reads the data of a deleted volume. Thin volumes are not cleared (the thin pool hands out
        zeroed blocks).
      - The default V(none) differs from Cinder's default V(zero) because clearing writes the whole volume on every
        delete; new thick volumes of this collection are zeroed when they are made, whatever this option says.
    type: str
    choices: [none, zero]
    default: none
  volume_clear_size:
    description:
      - With O(backend=lvm) and O(volume_clear=zero), how many MiB at the start of the volume (or copy-on-write
        area) are cleared; V(0) clears all of it.
    type: int
    default: 0
'''
