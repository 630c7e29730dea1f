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
      - Where volumes live. V(file) keeps each volume as files (raw or qcow2, with a qcow2 snapshot chain) in a
        local directory or on a mounted NFS/GlusterFS share, in the layout of Cinder's NFS and GlusterFS drivers
        (C(volume-<name>), C(volume-<name>.info)), so existing Cinder shares can be adopted.
    type: str
    default: file
    choices: [file]
  volume_dir:
    description:
      - A local directory that holds the volumes.
      - Mutually exclusive with O(share), O(shares) and O(shares_config).
    type: path
  share:
    description:
      - One NFS export or GlusterFS volume, written C(host:/path), already mounted at
        C(<mount_point_base>/<md5 hex of the share string>) (see M(blockyard.storage.share_mount)).
    type: str
  shares:
    description:
      - Several shares, each a C(host:/path) string or a dict with keys C(share) and C(options).
      - A new volume (M(blockyard.storage.volume)) is placed on the mounted share with the most usable free space
        that passes its placement limits (C(max_over_subscription_ratio), C(reserved_percentage)); an existing
        volume is found on whichever share holds it. Shares that are not mounted are skipped with a warning.
    type: list
    elements: raw
  shares_config:
    description:
      - Path of a Cinder-style shares file (one C(host:/path [-o options]) a line; blank and C(#) lines skipped),
        used like O(shares). Invalid lines are an error naming their line numbers.
    type: path
  mount_point_base:
    description:
      - Directory under which shares are mounted, one directory per share named by the md5 hex of the share
        string (the os-brick convention).
    type: path
    default: /var/lib/blockyard/mnt
  cinder_compatible_names:
    description:
      - Require volume and snapshot names that Cinder's own code can parse (lowercase UUIDs), for a share that
        Cinder's NFS driver manages too. Cinder reads backing file names with the pattern
        C(volume-<id>(.(tmp-snap-)?[0-9a-f-]+)?); a snapshot named, for example, C(nightly) in a chain breaks
        Cinder's snapshot delete and attach of that volume.
    type: bool
    default: false
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
