# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):

    # Where the rbd backend keeps volumes (backend=rbd).
    DOCUMENTATION = r'''
options:
  pool:
    description:
      - With O(backend=rbd), the Ceph pool that holds the volumes as RBD images C(volume-<name>), in Cinder's layout
        (snapshots are the protected RBD snapshots C(snapshot-<name>), copies are clones of C(volume-<copy>.clone_snap)).
      - Operations hold a lock object C(blockyard.lock.volume-<name>) in the pool, and multi-step operations keep a
        journal in the omap of the object C(blockyard.journal), so any controller can complete an interrupted run.
    type: str
    default: rbd
  namespace:
    description:
      - With O(backend=rbd), an RBD namespace of O(pool) (it must exist, C(rbd namespace create)).
    type: str
  max_clone_depth:
    description:
      - With O(backend=rbd), a copy of a volume that is already this many clones deep is flattened (made
        independent of its parents) once it is made; V(0) flattens every copy. As Cinder's C(rbd_max_clone_depth).
    type: int
    default: 5
  flatten_volume_from_snapshot:
    description:
      - With O(backend=rbd), flatten a volume made from a snapshot, so that the snapshot can later be deleted without
        flattening it then. As Cinder's C(rbd_flatten_volume_from_snapshot).
    type: bool
    default: false
'''
