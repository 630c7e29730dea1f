# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):

    # Where the file backend keeps volumes (backend=file).
    DOCUMENTATION = r'''
options:
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

    # Owner, group and mode of the files the file backend makes.
    OWNERSHIP = r'''
options:
  owner:
    description:
      - Owner (name or uid) of the files the task makes, and with M(blockyard.storage.volume) of every file of the
        volume. Enforced only when given; an unknown user is an error (in check mode too). Without it, new files take
        the owner of the volume's active file (root for a new volume). O(backend=file) only.
    type: str
  group:
    description: Group (name or gid), like O(owner).
    type: str
  mode:
    description:
      - Permissions, like O(owner), as a quoted octal string such as C("0660") (integers are refused, because an
        unquoted C(0660) is a different number in YAML). A new volume gets C(0660) without it.
    type: raw
'''
