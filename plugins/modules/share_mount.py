#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: share_mount
short_description: Mount NFS exports and GlusterFS volumes where the volume modules look for them
version_added: 0.1.0
description:
  - Mounts (or unmounts) one share, or every share of a Cinder-style shares file, at
    C(<mount_point_base>/<md5 hex of the share string>), the os-brick convention that
    M(blockyard.storage.volume), M(blockyard.storage.snapshot) and M(blockyard.storage.volume_info) rely on.
  - Plans first, then acts. The planned actions are returned as RV(actions); in check mode nothing is done
    (no directory is made, nothing is mounted or unmounted, no file is written).
  - A share already mounted at its mount point with the same source is left alone. A mount that no longer
    answers (C(ENOTCONN), C(ESTALE)) is lazily unmounted (C(umount -l)) and mounted again.
  - B(How a change of options is detected.) The kernel does not show the options a share was mounted with in a
    form that can be compared with what was asked for (C(/proc/self/mountinfo) lists the kernel's view, with
    defaults filled in, NFS options rewritten and the options of the GlusterFS client, such as
    C(backup-volfile-servers) or C(log-level), missing). So on every mount the module records the requested
    options in a small JSON file beside the mount points, C(<mount_point_base>/.<md5 hex>.options), written
    atomically, and compares the next request with that record. Options are compared as a set of
    comma-separated items (order, blanks and duplicates do not count). When they differ the share is remounted
    (C(umount), then C(mount)); a share in use cannot be unmounted and the task fails saying so.
  - A share mounted by someone else (by hand, by Cinder) has no record. It is adopted as it is and the requested
    options are recorded, unless what the kernel shows contradicts the request (another filesystem type, C(ro)
    asked for and mounted read-write or the other way round); then it is remounted.
author:
  - Blockyard storage team (@blockyard)
options:
  share:
    description:
      - The share, C(host:/export) for NFS or C(host:/volume) for GlusterFS. IPv6 hosts are written in brackets.
      - Mutually exclusive with O(shares_config); one of the two is required.
    type: str
  type:
    description:
      - Kind of share; the mount command is C(mount -t <type> -o <options> <share> <mount point>).
      - Required when O(state=mounted). With O(state=unmounted) it is not needed.
    type: str
    choices: [nfs, glusterfs]
  options:
    description:
      - Mount options, as after C(-o) in a shares file, for example C(vers=4.1,noatime) or
        C(backup-volfile-servers=gluster2:gluster3).
      - With O(shares_config), the options of lines that have no C(-o) of their own.
    type: str
  mount_point_base:
    description:
      - Directory under which each share is mounted in a directory named by the md5 hex of the share string.
        The volume modules must be given the same value.
    type: path
    default: /var/lib/blockyard/mnt
  state:
    description:
      - V(mounted) mounts the share (creating the mount point) and remounts it when stale or when the options
        changed.
      - V(unmounted) unmounts it (lazily when stale), then removes the empty mount point and the options record.
    type: str
    default: mounted
    choices: [mounted, unmounted]
  shares_config:
    description:
      - Path of a Cinder-style shares file (C(nfs_shares_config), C(glusterfs_shares_config)) whose every share
        is brought to O(state). One share a line, C(host:/path [-o options]); blank lines and C(#) comments are
        skipped; a share listed twice with the same options counts once.
      - Any invalid line (not C(host:/path), words after the share other than C(-o options), a share listed again
        with other options) fails the task naming the line numbers, before any share is touched.
      - Mutually exclusive with O(share).
    type: path
  check_writable:
    description:
      - After mounting, create, fsync and remove a temporary file on the share to prove it is writable (for
        example that NFS C(root_squash) does not deny the writes the volume modules make). Not done in check mode.
    type: bool
    default: false
notes:
  - Supports check mode and diff mode.
  - Needs root (mount, umount) and the client of the share type on the host (C(nfs-common) or C(nfs-utils) for
    NFS, C(glusterfs-client) or C(glusterfs-fuse) for GlusterFS); the role C(blockyard.storage.share_mounts)
    installs them.
  - The mount is not written to C(/etc/fstab); use the role at boot or a unit of your own to make it persistent.
seealso:
  - module: blockyard.storage.volume
  - module: blockyard.storage.volume_info
  - name: os-brick remotefs mount point convention
    description: The directory naming shared with OpenStack Cinder's NFS and GlusterFS drivers.
    link: https://opendev.org/openstack/os-brick/src/branch/master/os_brick/remotefs/remotefs.py
'''

EXAMPLES = r'''
- name: Mount a GlusterFS volume
  blockyard.storage.share_mount:
    share: gluster1:/volumes
    type: glusterfs
    options: backup-volfile-servers=gluster2:gluster3
    check_writable: true
  register: gv

- name: Put a volume on it
  blockyard.storage.volume:
    name: db01
    size: 10G
    share: gluster1:/volumes

- name: Mount every share of a Cinder NFS shares file
  blockyard.storage.share_mount:
    shares_config: /etc/cinder/nfs_shares
    type: nfs
    options: vers=4.1

- name: Unmount a share and remove its mount point
  blockyard.storage.share_mount:
    share: 192.0.2.10:/srv/cinder
    state: unmounted
'''

RETURN = r'''
share:
  description: The share.
  returned: when O(share) is given
  type: str
  sample: gluster1:/volumes
type:
  description: The share type (with O(state=unmounted) and no O(type), the one recorded at mount time, if any).
  returned: always
  type: str
  sample: glusterfs
options:
  description: The requested mount options, tidied (no blanks or empty items); null for none.
  returned: always
  type: str
  sample: backup-volfile-servers=gluster2:gluster3
mount_point:
  description: Where the share is (or would be) mounted.
  returned: when O(share) is given
  type: str
  sample: /var/lib/blockyard/mnt/5e2e4ad6d0e8a6c0a9f0fd0b29b3f4a3
state:
  description: The requested state.
  returned: always
  type: str
  sample: mounted
capacity:
  description:
    - Size of the mounted share from statvfs, null when not mounted (and in check mode when the mount would
      change).
  returned: always
  type: dict
  contains:
    total_bytes:
      description: Size of the share's filesystem.
      type: int
    free_bytes:
      description: Bytes available to non-root users.
      type: int
    used_bytes:
      description: Bytes in use.
      type: int
writable:
  description: True when the write test of O(check_writable) passed (it fails the task otherwise).
  returned: when O(check_writable=true), O(state=mounted) and not in check mode
  type: bool
actions:
  description: What was done (or, in check mode, would be done), in order; empty when nothing changed.
  returned: always
  type: list
  elements: str
  sample: ["create mount point /var/lib/blockyard/mnt/5e2e...", "mount -t glusterfs gluster1:/volumes /var/..."]
diff:
  description:
    - Mount state before and after (C(state) mounted, unmounted or stale, C(source), C(fstype), C(options));
      with O(shares_config) keyed by share.
  returned: always
  type: dict
shares:
  description: One result per share of O(shares_config) with the keys above and C(line) (its line number).
  returned: when O(shares_config) is given
  type: list
  elements: dict
mount_point_base:
  description: The mount point base.
  returned: when O(shares_config) is given
  type: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.blockyard.storage.plugins.module_utils import common, shares


def main():
    module = AnsibleModule(
        argument_spec=dict(
            share=dict(type='str'),
            type=dict(type='str', choices=list(shares.SHARE_TYPES)),
            options=dict(type='str'),
            mount_point_base=dict(type='path', default=shares.DEFAULT_MOUNT_POINT_BASE),
            state=dict(type='str', default='mounted', choices=['mounted', 'unmounted']),
            shares_config=dict(type='path'),
            check_writable=dict(type='bool', default=False),
        ),
        mutually_exclusive=[('share', 'shares_config')],
        required_one_of=[('share', 'shares_config')],
        required_if=[('state', 'mounted', ('type',))],
        supports_check_mode=True,
    )
    common.run(module, shares.ensure_shares)


if __name__ == '__main__':
    main()
