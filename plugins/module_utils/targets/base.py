# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The contract every iSCSI target provider implements, and the neutral
description of a target both modules speak (iscsi_target, export).

A TargetSpec is what a target must be: its IQN, LUNs (each a number and a
model.DataRef: a file, a block device or an RBD image, always read as raw
data), the initiators allowed (an ACL; empty with allow_all=False means
none), CHAP credentials (incoming, and outgoing for mutual CHAP), portals,
iSER and write cache. A provider reads what exists into the same shape
(`read`, secrets never included: only whether a password is set and
whether it matches), and plans the difference (`plan_ensure`,
`plan_remove`) as a plan.Plan: check mode returns its actions, a real run
executes them and then verifies the target the kernel/daemon reports.
Errors are StorageError subclasses naming the target, the cause and the fix."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import ipaddress
import re

from ansible_collections.blockyard.storage.plugins.module_utils.errors import InvalidInput

# RFC 3720 iqn. names (and eui.), lowercase; what both providers accept
IQN_RE = re.compile(r'^(iqn\.\d{4}-\d{2}\.[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*'
                    r'(:[a-z0-9.:-]+)?|eui\.[0-9a-f]{16})$')
PORTAL_RE = re.compile(r'^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]):(\d{1,5})$')


def validate_iqn(value, what='iqn'):
    if not isinstance(value, str) or len(value) > 223 or not IQN_RE.match(value):
        raise InvalidInput('%s %r is not a valid iSCSI name: use iqn.YYYY-MM.reversed.domain[:identifier] in '
                           'lowercase (RFC 3720), at most 223 characters, e.g. iqn.2026-11.org.example:db01.'
                           % (what, value))
    return value


def validate_portal(value):
    match = PORTAL_RE.match(value or '')
    try:
        ipaddress.ip_address(match.group(1).strip('[]') if match else '')
        ok = match is not None and 0 < int(match.group(3)) < 65536
    except ValueError:
        ok = False
    if not ok:
        raise InvalidInput('Portal %r is not ip:port (e.g. 192.0.2.10:3260, 0.0.0.0:3260 or [::]:3260).' % (value,))
    return value


class Chap:
    """CHAP credentials; repr and results never show the password."""

    def __init__(self, username, password):
        if not username or not password:
            raise InvalidInput('CHAP needs both a username and a password.')
        if not 12 <= len(password) <= 255:
            raise InvalidInput('A CHAP password must be 12 to 255 characters long (12 to 16 suit every initiator).')
        for text in (username, password):
            if any(c.isspace() or c in '"\'\\' for c in text):
                raise InvalidInput('CHAP credentials may not hold spaces, quotes or backslashes.')
        self.username = username
        self.password = password

    def __repr__(self):
        return 'Chap(%s, ********)' % self.username

    def __eq__(self, other):
        return isinstance(other, Chap) and (self.username, self.password) == (other.username, other.password)

    def __ne__(self, other):
        return not self == other


class Lun:
    def __init__(self, number, ref, serial=None):
        self.number = int(number)
        self.ref = ref              # a model.DataRef (kind file, block or rbd; format raw)
        self.serial = serial        # a unique SCSI serial (scsi_sn), or None


class TargetSpec:
    def __init__(self, iqn, luns=(), initiators=(), allow_all=False, chap=None, mutual_chap=None, portals=(),
                 iser=False, write_cache=None):
        self.iqn = validate_iqn(iqn)
        self.luns = list(luns)
        self.initiators = sorted(set(validate_iqn(i, 'initiator') for i in initiators))
        self.allow_all = bool(allow_all)
        self.chap = chap
        self.mutual_chap = mutual_chap
        self.portals = [validate_portal(p) for p in portals]
        self.iser = bool(iser)
        self.write_cache = write_cache

    def secrets(self):
        return [c.password for c in (self.chap, self.mutual_chap) if c is not None]


class Provider:
    """One iSCSI target implementation on the host the module runs on."""

    name = None
    first_lun = 0           # tgt: 1 (LUN 0 is its controller), LIO: 0
    package = None

    def __init__(self, params):
        self.params = params
        self.warnings = []

    def read(self, iqn):
        """The target as it exists (a dict: iqn, luns [{lun, kind, path or
        image, ...}], initiators, allow_all, chap_username, mutual_chap_username,
        portals, iser, write_cache), or None. No password is ever included."""
        raise NotImplementedError

    def plan_ensure(self, spec):
        """(plan, before): make the target exactly `spec`."""
        raise NotImplementedError

    def plan_remove(self, iqn):
        """(plan, before): remove the target (its LUNs' data is never touched)."""
        raise NotImplementedError
