# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read-only probe and planner of the lvm_volume_group role.

Run on the managed host by ansible.builtin.script. It reads the request (JSON)
from the environment variable BLOCKYARD_LVG_REQUEST, reads the host's state
(LVM's JSON reports, wipefs -n -J, sysfs, the mount table) and prints one
JSON object: what it found, the refusals (each naming the device or volume,
the cause and the fix) and the plan, a list of {argv, why} the role runs in
order with ansible.builtin.command. It changes nothing.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import re
import stat
import subprocess
import sys

NAME_RE = re.compile(r'^[A-Za-z0-9+_.][A-Za-z0-9+_.-]*$')
SIZE_RE = re.compile(r'^[0-9]+(\.[0-9]+)?[bBsSkKmMgGtTpPeE]?$')
EXTENTS_RE = re.compile(r'^[0-9]+%(FREE|VG|PVS)$')
RESERVED_LV_PREFIXES = ('snapshot', 'pvmove')
RESERVED_LV_PARTS = ('_cdata', '_cmeta', '_corig', '_mlog', '_mimage', '_pmspare', '_rimage', '_rmeta', '_tdata',
                     '_tmeta', '_vorigin', '_vdata')
REPORT = ['--reportformat', 'json', '--units', 'b', '--nosuffix']
TIMEOUT = 120


class ProbeError(Exception):
    """A command the probe needs failed."""


def run(argv):
    """stdout of argv (LC_ALL=C); ProbeError naming the command when it fails."""
    env = dict(os.environ, LC_ALL='C', LANG='C')
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=TIMEOUT,
                              check=False, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProbeError('%s could not run: %s. Install lvm2 and util-linux.' % (' '.join(argv), exc))
    if proc.returncode != 0:
        raise ProbeError('%s failed (rc %d): %s' % (' '.join(argv), proc.returncode,
                                                    proc.stderr.decode('utf-8', 'replace').strip()))
    return proc.stdout.decode('utf-8', 'replace')


def lvm_report(kind, fields):
    """The rows of `<kind>s --reportformat json` (pvs, vgs, lvs)."""
    text = run(['%ss' % kind] + REPORT + ['-o', ','.join(fields)])
    try:
        return json.loads(text)['report'][0][kind]
    except (ValueError, KeyError, IndexError, TypeError):
        raise ProbeError('%ss printed no JSON report: %r' % (kind, text[:300]))


def mounted_devices():
    """{(major, minor)} of every mounted filesystem's source device."""
    result = set()
    with open('/proc/self/mountinfo') as handle:
        for line in handle:
            fields = line.split()
            if len(fields) > 2 and ':' in fields[2]:
                major, minor = fields[2].split(':', 1)
                result.add((int(major), int(minor)))
    return result


def probe_device(given, pv_by_path, mounted):
    """What is on one device: resolved path, PV membership, signatures,
    holders (device-mapper devices on it), partitions, mounted or not."""
    info = {'given': given, 'path': None, 'exists': False, 'block': False, 'pv': False, 'pv_vg': None,
            'signatures': [], 'holders': [], 'partitions': [], 'mounted': False}
    path = os.path.realpath(given)
    if not os.path.exists(path):
        return info
    info.update(path=path, exists=True)
    st = os.stat(path)
    if not stat.S_ISBLK(st.st_mode):
        return info
    info['block'] = True
    info['mounted'] = (os.major(st.st_rdev), os.minor(st.st_rdev)) in mounted
    sysdir = '/sys/dev/block/%d:%d' % (os.major(st.st_rdev), os.minor(st.st_rdev))
    if os.path.isdir(os.path.join(sysdir, 'holders')):
        info['holders'] = sorted(os.listdir(os.path.join(sysdir, 'holders')))
    if os.path.isdir(sysdir):
        info['partitions'] = sorted(entry for entry in os.listdir(sysdir)
                                    if os.path.exists(os.path.join(sysdir, entry, 'partition')))
    if path in pv_by_path:
        info['pv'] = True
        info['pv_vg'] = pv_by_path[path]['vg_name']
    text = run(['wipefs', '--no-act', '--json', path])
    signatures = json.loads(text)['signatures'] if text.strip() else []
    info['signatures'] = [{'type': sig.get('type'), 'offset': sig.get('offset')} for sig in signatures]
    return info


def gather(request):
    """The host's state that the plan needs."""
    pvs = lvm_report('pv', ['pv_name', 'vg_name', 'pv_uuid'])
    vgs = lvm_report('vg', ['vg_name', 'vg_uuid', 'vg_size', 'vg_free', 'pv_count', 'lv_count',
                            'vg_extent_size'])
    lvs = lvm_report('lv', ['lv_name', 'vg_name', 'segtype', 'pool_lv', 'lv_attr', 'lv_size'])
    pv_by_path = dict((os.path.realpath(pv['pv_name']), pv) for pv in pvs)
    mounted = mounted_devices()
    name = request['name']
    vg = next((row for row in vgs if row['vg_name'] == name), None)
    return {
        'vg': vg,
        'lvs': [row for row in lvs if row['vg_name'] == name],
        'vg_pvs': sorted(path for path, pv in pv_by_path.items() if pv['vg_name'] == name),
        'devices': [probe_device(dev, pv_by_path, mounted) for dev in request.get('devices') or []],
    }


def _bad_lv_name(name):
    if not NAME_RE.match(name) or name in ('.', '..') or len(name) > 127:
        return 'use letters, digits and + _ . - only, not starting with -, at most 127 characters'
    if name.startswith(RESERVED_LV_PREFIXES):
        return 'LVM reserves names starting with %s' % ' or '.join(RESERVED_LV_PREFIXES)
    if any(part in name for part in RESERVED_LV_PARTS):
        return 'LVM reserves names containing %s' % ', '.join(RESERVED_LV_PARTS)
    return None


def validate(request):
    """Refusals of the request itself (before looking at the host)."""
    refusals = []
    name = request.get('name') or ''
    if not NAME_RE.match(name) or name in ('.', '..') or len(name) > 127:
        refusals.append('lvm_volume_group_name %r is not a valid volume group name: use letters, digits and '
                        '+ _ . - only, not starting with -, at most 127 characters.' % name)
    if request.get('state') == 'present' and not request.get('devices'):
        refusals.append('lvm_volume_group_devices is empty: list the block devices of volume group %s '
                        '(e.g. /dev/disk/by-id/virtio-data1).' % name)
    size = request.get('thin_pool_size') or ''
    if size and not (SIZE_RE.match(size) or EXTENTS_RE.match(size)):
        refusals.append('lvm_volume_group_thin_pool_size %r is not a size: write e.g. 10G, 512M or 90%%FREE '
                        '(also %%VG, %%PVS).' % size)
    pool = request.get('thin_pool') or ''
    if pool:
        why = _bad_lv_name(pool)
        if why:
            refusals.append('lvm_volume_group_thin_pool %r is not a valid logical volume name: %s.' % (pool, why))
    return refusals


def _size_args(size):
    return ['-l', size] if EXTENTS_RE.match(size) else ['-L', size]


def _describe(dev):
    what = []
    if dev['pv']:
        what.append('an LVM physical volume of volume group %s' % dev['pv_vg'] if dev['pv_vg']
                    else 'an LVM physical volume')
    what.extend('signature %s at offset %s' % (sig['type'], sig['offset']) for sig in dev['signatures']
                if sig['type'] != 'LVM2_member')
    if dev['partitions']:
        what.append('partitions %s' % ', '.join(dev['partitions']))
    return ' and '.join(what)


def plan_present(request, facts, refusals):
    name, force = request['name'], request.get('force')
    steps, add = [], []
    for dev in facts['devices']:
        label = dev['given'] if dev['path'] in (None, dev['given']) else '%s (%s)' % (dev['given'], dev['path'])
        if not dev['exists']:
            refusals.append('Device %s does not exist: check lvm_volume_group_devices (a by-id name that is not '
                            'there? ls -l /dev/disk/by-id).' % dev['given'])
            continue
        if not dev['block']:
            refusals.append('Device %s is not a block device: list block devices (disks, partitions, '
                            'multipath devices) in lvm_volume_group_devices.' % label)
            continue
        if dev['pv_vg'] == name:
            continue
        if dev['path'] in [d['path'] for d in add]:
            continue
        if dev['mounted']:
            refusals.append('Device %s is mounted: it holds a filesystem in use. Unmount it and remove it from '
                            '/etc/fstab if it should join volume group %s (lvm_volume_group_force does not '
                            'override this).' % (label, name))
            continue
        if dev['holders']:
            refusals.append('Device %s is in use by device-mapper devices %s (%s): deactivate and remove them '
                            'first (dmsetup ls; vgchange -an <vg>); lvm_volume_group_force does not override '
                            'this.' % (label, ', '.join(dev['holders']), _describe(dev) or 'no signature'))
            continue
        foreign = dev['pv_vg'] or dev['partitions'] or [s for s in dev['signatures'] if s['type'] != 'LVM2_member']
        if foreign and not force:
            refusals.append('Device %s holds %s: refusing to take it into volume group %s, which would destroy '
                            'that data. Fix: use another device, or wipe it yourself (wipefs -a %s), or set '
                            'lvm_volume_group_force: true to overwrite it.'
                            % (label, _describe(dev), name, dev['path']))
            continue
        add.append(dev)
    if refusals:
        return steps
    for dev in add:
        if dev['pv'] and not dev['pv_vg']:
            continue  # an unused PV: taken as it is
        if dev['pv_vg'] or dev['partitions'] or dev['signatures']:
            steps.append({'argv': ['pvcreate', '--force', '--force', '--yes', dev['path']],
                          'why': 'initialise %s as a physical volume, overwriting %s (lvm_volume_group_force)'
                                 % (dev['given'], _describe(dev))})
        else:
            steps.append({'argv': ['pvcreate', dev['path']],
                          'why': 'initialise %s as a physical volume' % dev['given']})
    paths = [dev['path'] for dev in add]
    if facts['vg'] is None:
        steps.append({'argv': ['vgcreate', name] + paths,
                      'why': 'create volume group %s on %s' % (name, ', '.join(paths))})
    elif paths:
        if not request.get('extend', True):
            refusals.append('Volume group %s exists without %s and lvm_volume_group_extend is false: set it to '
                            'true to add them, or remove them from lvm_volume_group_devices.'
                            % (name, ', '.join(paths)))
            return []
        steps.append({'argv': ['vgextend', name] + paths,
                      'why': 'add %s to volume group %s' % (', '.join(paths), name)})
    pool, size = request.get('thin_pool'), request.get('thin_pool_size')
    if pool:
        existing = next((lv for lv in facts['lvs'] if lv['lv_name'] == pool), None)
        if existing is not None and existing['segtype'] != 'thin-pool':
            refusals.append('Logical volume %s/%s exists and is a %s volume, not a thin pool: choose another '
                            'lvm_volume_group_thin_pool, or remove that volume (lvremove %s/%s).'
                            % (name, pool, existing['segtype'], name, pool))
            return []
        if existing is None:
            if not size:
                refusals.append('Thin pool %s/%s does not exist and lvm_volume_group_thin_pool_size is not set: '
                                'give its size (e.g. 10G or 90%%FREE).' % (name, pool))
                return []
            steps.append({'argv': ['lvcreate', '--yes', '--type', 'thin-pool'] + _size_args(size)
                          + ['-n', pool, name],
                          'why': 'create thin pool %s/%s of %s' % (name, pool, size)})
    return steps


def plan_absent(request, facts, refusals):
    name, force = request['name'], request.get('force')
    steps = []
    pvs = list(facts['vg_pvs'])
    if facts['vg'] is not None:
        volumes = [lv['lv_name'] for lv in facts['lvs'] if lv['segtype'] != 'thin-pool']
        if volumes and not force:
            refusals.append('Volume group %s still holds logical volumes %s: refusing to remove it and destroy '
                            'their data. Fix: remove them first (lvremove %s), or set lvm_volume_group_force: '
                            'true to remove them with the volume group.'
                            % (name, ', '.join(volumes), ' '.join('%s/%s' % (name, v) for v in volumes)))
            return steps
        steps.append({'argv': ['vgremove', '--force', name],
                      'why': 'remove volume group %s%s' % (
                          name, ' with its logical volumes %s' % ', '.join(lv['lv_name'] for lv in facts['lvs'])
                          if facts['lvs'] else '')})
    for dev in facts['devices']:
        if dev['pv'] and not dev['pv_vg'] and dev['path'] not in pvs:
            pvs.append(dev['path'])  # left by an earlier, interrupted removal
    if pvs:
        steps.append({'argv': ['pvremove'] + sorted(pvs),
                      'why': 'wipe the physical volume labels of %s' % ', '.join(sorted(pvs))})
    return steps


def plan(request, facts):
    """(refusals, steps) for the request against the host's facts."""
    refusals = validate(request)
    if refusals:
        return refusals, []
    if request.get('state') == 'absent':
        steps = plan_absent(request, facts, refusals)
    else:
        steps = plan_present(request, facts, refusals)
    return refusals, ([] if refusals else steps)


def main():
    try:
        request = json.loads(os.environ['BLOCKYARD_LVG_REQUEST'])
    except (KeyError, ValueError) as exc:
        print(json.dumps({'failed': True, 'msg': 'BLOCKYARD_LVG_REQUEST is missing or not JSON: %s' % exc}))
        return 0
    refusals = validate(request)
    facts = {'vg': None, 'lvs': [], 'vg_pvs': [], 'devices': []}
    if not refusals:
        try:
            facts = gather(request)
        except ProbeError as exc:
            print(json.dumps({'failed': True, 'msg': 'Cannot read the LVM state: %s' % exc}))
            return 0
        refusals, steps = plan(request, facts)
    else:
        steps = []
    print(json.dumps(dict(facts, refusals=refusals, plan=steps), sort_keys=True))
    return 0


if __name__ == '__main__':
    sys.exit(main())
