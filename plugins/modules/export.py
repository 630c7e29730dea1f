#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: export
short_description: Make a volume reachable by a host and return os-brick's connection_info
version_added: 0.1.0
description:
  - Cinder's create_export, ensure_export, remove_export, initialize_connection and terminate_connection, for
    every backend. The module asks the volume's backend how a hypervisor reaches the data, and returns
    C(connection_info) in the format os-brick (and Nova) read.
  - A file volume on a mounted NFS or GlusterFS share is read by the hypervisor through its own mount of the
    share (C(driver_volume_type) V(nfs) or V(glusterfs), with the volume's format); an RBD volume through librbd
    (V(rbd)). Nothing is created for them.
  - Otherwise (a file volume in a local directory, or with O(protocol) set), the volume's active data becomes the
    one LUN of an iSCSI target C(<iqn_prefix>volume-<name>) (tgt through its include directory, or LIO through
    rtslib-fb), authorized for the initiator of O(connector), with CHAP. A LUN exposes the guest's data, so a volume
    whose data is in a qcow2 container (a qcow2 volume, or a volume with snapshots) is refused, never exported
    as its container.
  - CHAP credentials are generated once per target (a 20-character user, a 16-character password, from an
    alphabet without look-alike characters), kept on the target host in O(secrets_dir) with mode 0600, and
    reused by every later run. They are returned only inside C(connection_info); set C(no_log) on the task
    (the credentials are not shown by C(-v) then) and pass C(connection_info) on with care.
  - The volume is locked while its export changes; every run checks the data is safe to hand out (its format
    is the recorded one, its size not above the volume's).
author:
  - Blockyard storage team (@blockyard)
extends_documentation_fragment:
  - blockyard.storage.location
  - blockyard.storage.file
  - blockyard.storage.rbd
  - blockyard.storage.lvm
  - blockyard.storage.ceph
  - blockyard.storage.attributes
requirements:
  - For iSCSI exports, on the target host, tgt (Debian/Ubuntu package tgt, and tgt-rbd for RBD volumes) or LIO
    (python3-rtslib-fb).
  - For AoE exports, on the target host, vblade (Debian/Ubuntu package vblade) and systemd.
options:
  volume:
    description: Name of the volume to export.
    type: str
    required: true
  state:
    description:
      - V(present) ensures the export and authorizes O(connector); V(absent) with O(connector) deauthorizes that
        initiator only (terminate_connection); V(absent) without it removes the export (remove_export). The
        volume's data is never touched.
    type: str
    default: present
    choices: [present, absent]
  connector:
    description:
      - The host the volume is attached to, as os-brick describes it (C(ip), C(initiator), C(host),
        C(multipath)). Its C(initiator) IQN is added to (V(present)) or removed from (V(absent)) the target's ACL.
    type: dict
  protocol:
    description:
      - V(iscsi) or V(iser) exports the volume as a LUN even where the hypervisor could read it natively (an RBD
        volume through tgt-rbd, for initiators that do not speak RBD). Left out, shares and RBD volumes are
        handed out natively and other volumes over iSCSI.
      - V(aoe) exports a raw volume (an LVM logical volume, or a raw file volume) over ATA over Ethernet, with a vblade
        process serving it as shelf O(aoe_shelf), slot O(aoe_slot) on O(aoe_interface), kept running by the systemd
        unit C(/etc/systemd/system/blockyard-vblade-<shelf>-<slot>.service) (the unit is the export's record). AoE
        has no ACL or authentication (any host of that Ethernet segment can read and write the volume), so
        O(connector) changes nothing. A volume whose data is in a qcow2 container is refused.
    type: str
    choices: [iscsi, iser, aoe]
  aoe_interface:
    description: With O(protocol=aoe), the network interface vblade serves the volume on (a storage network).
    type: str
  aoe_shelf:
    description:
      - With O(protocol=aoe), the AoE shelf (0 to 65534). Left out, the lowest shelf with a free slot, from 0.
      - Given with O(aoe_slot), the address must not be another volume's.
    type: int
  aoe_slot:
    description:
      - With O(protocol=aoe), the AoE slot (0 to 254). Left out, the lowest free slot of the shelf. Once exported,
        a volume keeps its address on every later run (found by its unit file).
    type: int
  target_provider:
    description: The iSCSI target of the target host.
    type: str
    default: tgt
    choices: [tgt, lio]
  portal:
    description:
      - C(ip:port) initiators reach the target at (C(target_portal) of the connection_info). Needed for iSCSI
        exports.
      - With O(target_provider=lio) the target listens on every address at that port (C(0.0.0.0:<port>), or
        C([::]:<port>)), as targetcli does, because the kernel refuses a specific address on a port where another target
        listens on the wildcard.
    type: str
  iqn_prefix:
    description: Prefix of the target name; the target is C(<iqn_prefix>volume-<name>) (lowercase).
    type: str
    default: 'iqn.2026-11.org.blockyard:'
  chap:
    description: Protect the target with CHAP (incoming authentication).
    type: bool
    default: true
  secrets_dir:
    description: Where the target host keeps the CHAP credentials of its exports (a directory of mode 0700).
    type: path
    default: /var/lib/blockyard/exports
  config_dir:
    description: tgt, the include directory of its configuration (one file per target).
    type: path
    default: /etc/tgt/conf.d
  control_port:
    description: tgt, the control port of a tgtd started with C(-C) (beside another tgtd).
    type: int
  saveconfig:
    description: LIO, the file rtslib saves the configuration to.
    type: path
  secret_uuid:
    description: For RBD volumes, the libvirt secret holding the Ceph key on the hypervisors (C(secret_uuid)).
    type: str
notes:
  - Supports check mode and diff mode (the target's initiators and LUNs before and after; never a password).
'''

EXAMPLES = r'''
- name: Export a volume of a local directory to a hypervisor over iSCSI
  blockyard.storage.export:
    volume: db01
    volume_dir: /srv/volumes
    portal: 192.0.2.10:3260
    connector:
      initiator: iqn.1993-08.org.debian:01:hv1
      ip: 192.0.2.21
      host: hv1
  no_log: true
  register: db01_export

- name: The connection_info of a volume on a GlusterFS share (nothing to create)
  blockyard.storage.export:
    volume: web01
    share: gluster1:/volumes
  register: web01_export

- name: Detach db01 from hv1 only
  blockyard.storage.export:
    volume: db01
    volume_dir: /srv/volumes
    state: absent
    connector:
      initiator: iqn.1993-08.org.debian:01:hv1

- name: Export a raw volume over ATA over Ethernet on the storage network
  blockyard.storage.export:
    volume: scratch01
    volume_dir: /srv/volumes
    protocol: aoe
    aoe_interface: eth1
  register: scratch01_export   # connection_info.data.target_shelf / target_lun: /dev/etherd/e<shelf>.<slot>

- name: Remove the export of db01
  blockyard.storage.export:
    volume: db01
    volume_dir: /srv/volumes
    state: absent
'''

RETURN = r'''
connection_info:
  description:
    - os-brick's connection_info (C(driver_volume_type) and C(data)); for iSCSI it holds the CHAP password in
      C(data.auth_password). Only when O(state=present).
  returned: when state is present
  type: dict
export:
  description:
    - The export, C(volume), C(protocol), C(state); for a target also C(target_iqn), C(target_lun), C(provider)
      and C(target) (its LUNs, initiators, CHAP user; never a password); for AoE C(aoe) (C(shelf), C(slot),
      C(interface), C(path), C(unit)).
  returned: always
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
  description: The target's initiators, LUNs and CHAP user before and after.
  returned: always
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.blockyard.storage.plugins.module_utils import common, exports


def main():
    module = AnsibleModule(
        argument_spec=common.location_args(
            volume=dict(type='str', required=True),
            state=dict(type='str', default='present', choices=['present', 'absent']),
            connector=dict(type='dict'),
            protocol=dict(type='str', choices=['iscsi', 'iser', 'aoe']),
            aoe_interface=dict(type='str'),
            aoe_shelf=dict(type='int'),
            aoe_slot=dict(type='int'),
            target_provider=dict(type='str', default='tgt', choices=['tgt', 'lio']),
            portal=dict(type='str'),
            iqn_prefix=dict(type='str', default=exports.DEFAULT_IQN_PREFIX),
            chap=dict(type='bool', default=True),
            secrets_dir=dict(type='path', default=exports.DEFAULT_SECRETS_DIR),
            config_dir=dict(type='path', default='/etc/tgt/conf.d'),
            control_port=dict(type='int'),
            saveconfig=dict(type='path'),
            secret_uuid=dict(type='str', no_log=False),  # a libvirt secret's UUID, not a secret
        ),
        mutually_exclusive=common.LOCATION_EXCLUSIVE,
        supports_check_mode=True,
    )
    common.run(module, exports.ensure_export)


if __name__ == '__main__':
    main()
