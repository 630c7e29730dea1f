# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ATA over Ethernet exports (nova-volume's other export): one vblade
process per volume, serving the volume's raw data as AoE shelf.slot on one
network interface, kept running by a systemd unit
/etc/systemd/system/blockyard-vblade-<shelf>-<slot>.service.

The unit file is the record of the export: a comment line holds the volume,
its data path, the interface, shelf and slot as JSON, so a re-run finds the
export of a volume by its data path and keeps its shelf and slot. A shelf
and slot left out are allocated deterministically: the lowest free slot of
the lowest shelf from aoe_shelf (default 0), in the order of the records.
AoE has no initiator ACL or authentication here: any host on the interface's
segment reads and writes the volume; use a dedicated storage network."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import re
import shutil
import time

from ansible_collections.blockyard.storage.plugins.module_utils import fileio, runner
from ansible_collections.blockyard.storage.plugins.module_utils.errors import (
    Conflict, InvalidInput, MissingDependency, StorageError, Unsupported)
from ansible_collections.blockyard.storage.plugins.module_utils.plan import Plan

UNIT_DIR = '/etc/systemd/system'
SYSTEMD_RUN_DIR = '/run/systemd/system'
NET_DIR = '/sys/class/net'
VBLADE_PATHS = ('/usr/sbin/vblade', '/usr/bin/vblade')
UNIT_RE = re.compile(r'^blockyard-vblade-(\d{1,5})-(\d{1,3})\.service$')
RECORD_PREFIX = '# blockyard-aoe: '
IFACE_RE = re.compile(r'^[A-Za-z0-9_.-]{1,15}$')
MAX_SHELF = 65534      # 0xffff is the broadcast shelf
MAX_SLOT = 254         # 0xff is the broadcast slot
SETTLE_SECONDS = 1.5   # vblade exits at once when it cannot open the data or the interface


def unit_name(shelf, slot):
    return 'blockyard-vblade-%d-%d.service' % (shelf, slot)


def _quote(arg):
    """One ExecStart argument: double-quoted, with systemd's specifiers and
    variables escaped."""
    return '"%s"' % arg.replace('\\', '\\\\').replace('"', '\\"').replace('%', '%%').replace('$', '$$')


def unit_text(record, vblade):
    return '\n'.join([
        '# Written by blockyard.storage (export, protocol aoe); removed by state=absent. Do not edit.',
        RECORD_PREFIX + json.dumps(record, sort_keys=True),
        '[Unit]',
        'Description=AoE export e%d.%d of volume %s (blockyard.storage)' % (
            record['shelf'], record['slot'], record['volume'].replace('%', '%%')),
        'After=network.target',
        '',
        '[Service]',
        'Type=simple',
        'ExecStart=%s' % ' '.join(_quote(str(a)) for a in (
            vblade, record['shelf'], record['slot'], record['interface'], record['path'])),
        'Restart=always',
        'RestartSec=2',
        '',
        '[Install]',
        'WantedBy=multi-user.target',
        ''])


def _valid_record(data, shelf, slot):
    if not isinstance(data, dict):
        return False
    return (data.get('shelf') == shelf and data.get('slot') == slot
            and isinstance(data.get('volume'), str) and isinstance(data.get('path'), str)
            and os.path.isabs(data['path']) and isinstance(data.get('interface'), str)
            and IFACE_RE.match(data['interface']) is not None)


def read_records(unit_dir=None):
    """Every AoE export of this host: {(shelf, slot): record}. A unit of our
    name that is not what this module writes is an error naming it."""
    unit_dir = unit_dir or UNIT_DIR
    records = {}
    try:
        names = sorted(os.listdir(unit_dir))
    except OSError as exc:
        if exc.errno == 2:
            return records
        raise fileio.os_error(exc, 'Listing the systemd units', unit_dir)
    for name in names:
        match = UNIT_RE.match(name)
        if not match:
            continue
        shelf, slot = int(match.group(1)), int(match.group(2))
        path = os.path.join(unit_dir, name)
        fd, _st = fileio.open_regular(path, os.O_RDONLY, 'the AoE unit')
        try:
            text = os.read(fd, 65536).decode('utf-8', 'replace')
        finally:
            os.close(fd)
        data = None
        for line in text.splitlines():
            if line.startswith(RECORD_PREFIX):
                try:
                    data = json.loads(line[len(RECORD_PREFIX):])
                except ValueError:
                    data = None
                break
        if not _valid_record(data, shelf, slot):
            raise StorageError('The systemd unit %s is not an AoE export this collection wrote (its "%s" line is '
                               'missing or damaged): refusing to guess which volume it serves. Stop and remove it '
                               '(systemctl disable --now %s; rm %s) or restore it.'
                               % (path, RECORD_PREFIX.strip('# :'), name, path), path=path)
        records[(shelf, slot)] = dict(data, unit=name)
    return records


def find_vblade():
    for path in VBLADE_PATHS:
        if os.access(path, os.X_OK):
            return path
    return shutil.which('vblade')


def check_shelf_slot(shelf, slot):
    if shelf is not None and (isinstance(shelf, bool) or not isinstance(shelf, int) or not 0 <= shelf <= MAX_SHELF):
        raise InvalidInput('aoe_shelf %r is out of range: an AoE shelf is 0 to %d (%d is the broadcast shelf).'
                           % (shelf, MAX_SHELF, MAX_SHELF + 1))
    if slot is not None and (isinstance(slot, bool) or not isinstance(slot, int) or not 0 <= slot <= MAX_SLOT):
        raise InvalidInput('aoe_slot %r is out of range: an AoE slot is 0 to %d (%d is the broadcast slot).'
                           % (slot, MAX_SLOT, MAX_SLOT + 1))


def allocate(records, path, shelf=None, slot=None):
    """(shelf, slot) for the volume whose data is `path`: the given pair
    (refused when another volume has it), or the lowest free one."""
    check_shelf_slot(shelf, slot)
    taken = dict((key, rec) for key, rec in records.items() if rec['path'] != path)
    if shelf is not None and slot is not None:
        other = taken.get((shelf, slot))
        if other:
            raise Conflict('AoE address e%d.%d is taken by volume %s (%s, unit %s): give another aoe_shelf/aoe_slot, '
                           'or leave them out to get a free one.'
                           % (shelf, slot, other['volume'], other['path'], other['unit']))
        return shelf, slot
    for candidate in range(shelf or 0, MAX_SHELF + 1):
        for number in ([slot] if slot is not None else range(MAX_SLOT + 1)):
            if (candidate, number) not in taken:
                return candidate, number
    raise Conflict('No free AoE address from shelf %d: every slot is taken.' % (shelf or 0))


def _systemctl(*args, **kwargs):
    return runner.run(['systemctl'] + list(args), what=kwargs.pop('what', 'systemctl %s' % ' '.join(args)),
                      **kwargs)


def unit_state(name):
    """(active, main pid) of a unit."""
    res = _systemctl('show', '-p', 'ActiveState', '-p', 'MainPID', name, check=False)
    props = dict(line.split('=', 1) for line in (res.stdout or '').splitlines() if '=' in line)
    try:
        pid = int(props.get('MainPID') or 0)
    except ValueError:
        pid = 0
    return props.get('ActiveState') == 'active', pid


class AoeExport:
    """The AoE export of one volume (its data reference `ref`)."""

    def __init__(self, volume_name, ref, unit_dir=None):
        self.volume = volume_name
        self.ref = ref
        self.unit_dir = unit_dir or UNIT_DIR

    def check_data(self):
        ref = self.ref
        if ref.kind not in ('block', 'file') or (ref.format or 'raw') != 'raw':
            raise Unsupported(
                'Volume %s cannot be exported over AoE: its data (%s) is %s %s, and vblade serves the raw bytes of '
                'a block device or file (the guest would see the %s container). Make a raw copy to export '
                '(blockyard.storage.volume with source_volume: %s and format: raw), or export it over iSCSI or '
                'natively.' % (self.volume, ref.describe(), ref.kind, ref.format, ref.format, self.volume),
                volume=self.volume)

    def current(self, records=None):
        records = read_records(self.unit_dir) if records is None else records
        mine = [rec for _k, rec in sorted(records.items()) if rec['path'] == self.ref.path]
        return mine, records

    def plan_present(self, interface, shelf=None, slot=None):
        self.check_data()
        vblade = find_vblade()
        if not vblade:
            raise MissingDependency('The AoE export of volume %s needs vblade on the target host, which is not '
                                    'installed: install the vblade package (apt-get install vblade).' % self.volume,
                                    volume=self.volume)
        if not os.path.isdir(SYSTEMD_RUN_DIR):
            raise Unsupported('The AoE export of volume %s is kept running by a systemd unit, and systemd does not '
                              'run on this host (%s is absent). Run vblade under your own supervisor '
                              '(vblade <shelf> <slot> <interface> %s), or use protocol iscsi.'
                              % (self.volume, SYSTEMD_RUN_DIR, self.ref.path), volume=self.volume)
        if not interface:
            raise InvalidInput('Volume %s is exported over AoE: give aoe_interface, the network interface of the '
                               'storage network vblade answers on (e.g. eth1).' % self.volume)
        if not IFACE_RE.match(interface) or not os.path.isdir(os.path.join(NET_DIR, interface)):
            raise InvalidInput('aoe_interface %r of volume %s is not a network interface of this host (none in %s). '
                               'Give an existing interface (ip link).' % (interface, self.volume, NET_DIR))
        mine, records = self.current()
        plan = Plan('aoe_present')
        keep = None
        for rec in mine:
            if (keep is None and rec['interface'] == interface and (shelf is None or rec['shelf'] == shelf)
                    and (slot is None or rec['slot'] == slot)):
                keep = rec
        for rec in mine:
            if rec is not keep:
                self._plan_remove(plan, rec, 'moved to %s' % ('a new address' if keep is None else interface))
        if keep is None:
            free = dict((k, r) for k, r in records.items() if r not in mine)
            new_shelf, new_slot = allocate(free, self.ref.path, shelf, slot)
            keep = {'volume': self.volume, 'path': self.ref.path, 'interface': interface, 'shelf': new_shelf,
                    'slot': new_slot, 'unit': unit_name(new_shelf, new_slot)}
            record = dict((k, v) for k, v in keep.items() if k != 'unit')
            path = os.path.join(self.unit_dir, keep['unit'])
            plan.add('write systemd unit %s (vblade %d %d %s %s)' % (path, new_shelf, new_slot, interface,
                                                                     self.ref.path),
                     fileio.atomic_write, path, unit_text(record, vblade), 0o644)
            plan.on_failure(self._undo, keep['unit'])
            plan.add('reload systemd', _systemctl, 'daemon-reload', what='Reloading systemd for %s' % keep['unit'])
            plan.add('start and enable %s (AoE e%d.%d of volume %s on %s)'
                     % (keep['unit'], new_shelf, new_slot, self.volume, interface),
                     self._start, keep['unit'])
        else:
            active, _pid = unit_state(keep['unit'])
            if not active:
                plan.add('start and enable %s (it was not running)' % keep['unit'], self._start, keep['unit'])
        plan.after = keep
        return plan, (mine[0] if mine else None)

    def plan_absent(self, records=None):
        mine, _records = self.current(records)
        plan = Plan('aoe_absent')
        for rec in mine:
            self._plan_remove(plan, rec, 'export removed')
        return plan, (mine[0] if mine else None)

    def _plan_remove(self, plan, rec, why):
        path = os.path.join(self.unit_dir, rec['unit'])
        plan.add('stop and disable %s (AoE e%d.%d of volume %s: %s)' % (rec['unit'], rec['shelf'], rec['slot'],
                                                                        rec['volume'], why),
                 _systemctl, 'disable', '--now', rec['unit'], what='Stopping %s' % rec['unit'])
        plan.add('remove %s' % path, fileio.unlink, path)
        plan.add('reload systemd', _systemctl, 'daemon-reload', what='Reloading systemd after removing %s'
                 % rec['unit'])

    def _start(self, unit):
        _systemctl('enable', '--now', unit, what='Starting %s' % unit)
        time.sleep(SETTLE_SECONDS)
        active, pid = unit_state(unit)
        if not active or not pid:
            log = runner.run(['journalctl', '-u', unit, '-n', '5', '--no-pager', '-o', 'cat'], check=False)
            raise StorageError('%s (vblade for volume %s) does not stay up: %s. Check that the data and the interface '
                               'exist and that no other vblade serves the same address, then run again.'
                               % (unit, self.volume, (log.stdout or '').strip().replace('\n', ' | ') or
                                  'no log'), unit=unit)

    def _undo(self, unit):
        _systemctl('disable', '--now', unit, check=False)
        fileio.unlink(os.path.join(self.unit_dir, unit))
        _systemctl('daemon-reload', check=False)
