#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: iscsi_target
short_description: Manage an iSCSI target (tgt or LIO) with file or block device LUNs, an initiator ACL and CHAP
version_added: 0.1.0
description:
  - Makes an iSCSI target exactly what the options say (LUNs, initiators allowed, CHAP), or removes it. The data of
    the files and devices behind the LUNs is never touched, not even on removal.
  - With O(provider=tgt) the target is one configuration file per target in O(config_dir) (mode 0600, it holds the
    CHAP passwords), applied with C(tgt-admin --update) and verified against C(tgtadm --op show); a target that tgtd
    lost (a restart without C(tgt-admin -e)) is created again from it.
  - An empty O(initiators) list admits no initiator unless O(allow_all=true). With tgt the ACL is the initiator
    names plus the address rule C(0.0.0.0/32), which matches no initiator; tgt admits an initiator when any rule
    matches, so a name-only ACL would otherwise admit everybody.
  - Passwords never appear in the result, the diff, errors or logs. With tgt, C(tgt-admin) passes a CHAP password
    to C(tgtadm) on its command line while that command runs (a tgt limitation).
author:
  - Blockyard storage team (@blockyard)
extends_documentation_fragment:
  - blockyard.storage.attributes
requirements:
  - tgt (C(tgtd), C(tgt-admin), C(tgtadm); Debian/Ubuntu package tgt) with a running tgtd, for O(provider=tgt).
  - python3-rtslib-fb and the target kernel modules for O(provider=lio).
options:
  iqn:
    description: The target's iSCSI name, C(iqn.YYYY-MM.reversed.domain[:identifier]) in lowercase (RFC 3720).
    type: str
    required: true
  state:
    description: V(present) creates or updates the target, V(absent) removes it (a target that does not exist is
      success).
    type: str
    default: present
    choices: [present, absent]
  provider:
    description: The target implementation on the managed host.
    type: str
    default: tgt
    choices: [tgt, lio]
  portals:
    description:
      - Where the target listens, as C(ip:port) (C([::]:3260) for IPv6).
      - With V(lio), the target's portals; V(0.0.0.0:3260) when not given.
      - With V(tgt), every target is served on the portals tgtd was started with (C(--iscsi portal=...)), so this is
        only checked against them (a wildcard portal with the same port covers any address); the task fails when
        tgtd does not listen there. Leave it unset to skip the check.
    type: list
    elements: str
  luns:
    description:
      - The target's LUNs. A LUN is backed by an existing regular file or block device, given by its absolute,
        canonical path (symbolic links, directories and other special files are refused), and read as raw data.
      - tgt numbers LUNs from 1 (LUN 0 is its controller), LIO from 0.
      - The LUNs not listed are removed from the target.
    type: list
    elements: dict
    default: []
    suboptions:
      lun:
        description: LUN number.
        type: int
        required: true
      path:
        description: Absolute path of the regular file or block device.
        type: path
        required: true
      serial:
        description:
          - SCSI serial number of the LUN (1 to 36 letters, digits, C(-) and C(_)).
          - Default, a serial derived from the target and LUN number, unique per LUN and stable across runs (tgt's
            own default is the same on every target, which confuses multipath).
        type: str
  initiators:
    description: IQNs of the initiators allowed to log in. Empty, none is unless O(allow_all=true).
    type: list
    elements: str
    default: []
  allow_all:
    description: Admit every initiator (then O(initiators) must be empty; use CHAP).
    type: bool
    default: false
  chap:
    description: CHAP credentials the initiators must present (and, for mutual CHAP, the target's).
    type: dict
    suboptions:
      username:
        description: Incoming CHAP user name.
        type: str
        required: true
      password:
        description: Incoming CHAP password, 12 to 255 characters (12 to 16 suit every initiator).
        type: str
        required: true
      mutual_username:
        description: Outgoing (mutual) CHAP user name.
        type: str
      mutual_password:
        description: Outgoing (mutual) CHAP password.
        type: str
  iser:
    description: Serve the target over iSER (RDMA) instead of TCP. Needs RDMA hardware and the target's iSER driver.
    type: bool
    default: false
  config_dir:
    description: With V(tgt), the include directory holding one configuration file per target (Debian's
      C(/etc/tgt/targets.conf) includes it, so targets come back when tgtd restarts).
    type: path
    default: /etc/tgt/conf.d
  control_port:
    description: With V(tgt), the management port of a tgtd started with C(-C <port>) (C(tgtadm -C)). Default, tgtd's
      default one.
    type: int
  write_cache:
    description: Enable or disable the LUNs' write cache. Default, the provider's default (tgt, on).
    type: bool
  saveconfig:
    description: With V(lio), the file rtslib saves the configuration to (restored at boot). Default,
      C(/etc/rtslib-fb-target/saveconfig.json).
    type: path
notes:
  - Supports check mode (nothing is written and the target daemon is not touched) and diff mode (the target before
    and after; a password only as C(chap_password_set)).
  - With tgt, a target with connected initiators is not updated, because C(tgt-admin --update) leaves a target in
    use alone. The task fails and says so; log the initiators out and re-run.
seealso:
  - module: blockyard.storage.volume
'''

EXAMPLES = r'''
- name: Export two volumes to one initiator, with CHAP
  blockyard.storage.iscsi_target:
    iqn: iqn.2026-11.org.example:db01
    luns:
      - lun: 1
        path: /srv/volumes/volume-db01
      - lun: 2
        path: /dev/vg0/db01-logs
    initiators:
      - iqn.1993-08.org.debian:01:hypervisor1
    chap:
      username: db01
      password: "{{ db01_chap_password }}"   # no_log: never shown in output

- name: A tgtd started with -C 7, its targets in their own include directory
  blockyard.storage.iscsi_target:
    iqn: iqn.2026-11.org.example:scratch
    luns:
      - lun: 1
        path: /srv/volumes/volume-scratch
    allow_all: true
    control_port: 7
    config_dir: /var/lib/bytgt/conf.d

- name: Remove the target (the files stay)
  blockyard.storage.iscsi_target:
    iqn: iqn.2026-11.org.example:db01
    state: absent
'''

RETURN = r'''
target:
  description:
    - The target after the task (in check mode, as it would be), as the provider reports it; null when absent. Never
      a password.
  returned: always
  type: dict
  contains:
    iqn:
      description: The target's name.
      type: str
    luns:
      description: The LUNs, each with C(lun), C(kind) (file, block or rbd), C(path) (or C(pool) and C(image)), and
        with tgt C(serial), C(backing_store_type) and C(size).
      type: list
      elements: dict
    initiators:
      description: IQNs allowed to log in.
      type: list
      elements: str
    allow_all:
      description: Whether every initiator is admitted.
      type: bool
    chap_username:
      description: Incoming CHAP user, or null.
      type: str
    chap_password_set:
      description: Whether an incoming CHAP password is set.
      type: bool
    mutual_chap_username:
      description: Outgoing CHAP user, or null.
      type: str
    portals:
      description: Where the target can be reached (with tgt, where tgtd listens).
      type: list
      elements: str
    iser:
      description: Whether the target is served over iSER.
      type: bool
    write_cache:
      description: The write cache setting, or null for the provider's default.
      type: bool
    tid:
      description: With tgt, the target id.
      type: int
    sessions:
      description: With tgt, the number of connected initiator sessions (I_T nexuses).
      type: int
    config_file:
      description: With tgt, the target's configuration file.
      type: str
actions:
  description: What the task did (or would do), in order.
  returned: always
  type: list
  elements: str
diff:
  description: The target before and after (LUNs, initiators, allow_all, CHAP user names, chap_password_set, iser,
    write_cache); a changed password shows as C(chap_password) C(******** (changed)).
  returned: always
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.blockyard.storage.plugins.module_utils import common, iscsi


def main():
    module = AnsibleModule(
        argument_spec=dict(
            iqn=dict(type='str', required=True),
            state=dict(type='str', default='present', choices=['present', 'absent']),
            provider=dict(type='str', default='tgt', choices=['tgt', 'lio']),
            portals=dict(type='list', elements='str'),
            luns=dict(type='list', elements='dict', default=[], options=dict(
                lun=dict(type='int', required=True),
                path=dict(type='path', required=True),
                serial=dict(type='str'),
            )),
            initiators=dict(type='list', elements='str', default=[]),
            allow_all=dict(type='bool', default=False),
            chap=dict(type='dict', options=dict(
                username=dict(type='str', required=True),
                password=dict(type='str', required=True, no_log=True),
                mutual_username=dict(type='str'),
                mutual_password=dict(type='str', no_log=True),
            ), required_together=[('mutual_username', 'mutual_password')]),
            iser=dict(type='bool', default=False),
            config_dir=dict(type='path', default='/etc/tgt/conf.d'),
            control_port=dict(type='int'),
            write_cache=dict(type='bool'),
            saveconfig=dict(type='path'),
        ),
        supports_check_mode=True,
    )
    common.run(module, iscsi.ensure_target)


if __name__ == '__main__':
    main()
