# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The export module's core: Cinder's create_export / ensure_export /
remove_export / initialize_connection / terminate_connection for every
backend.

It asks the volume's backend for its data reference and the target registry
for the provider, and never looks inside either. A volume is handed out

- natively where the hypervisor reads its storage itself: a file volume on
  an NFS or GlusterFS share (os-brick's nfs / glusterfs connection_info, in
  the volume's own format), an RBD volume (os-brick's rbd connection_info);
- as an iSCSI (or iSER) LUN otherwise, or when `protocol` asks for it: a
  target `<iqn_prefix>volume-<name>` whose one LUN is the volume's active
  data, which must be raw guest data (a qcow2 container is refused: a LUN
  exposes what the guest wrote, never an image format around it), with
  CHAP credentials generated once and kept on the target host (mode 0600),
  and an ACL of the initiators that were authorized.

Each run checks the image is safe to hand out: the format is known (the
backend's record, never probed), and the data is not larger than the volume."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import json
import os
import secrets
import stat

from ansible_collections.blockyard.storage.plugins.module_utils import aoe, connection_info, fileio, targets, volumes
from ansible_collections.blockyard.storage.plugins.module_utils.errors import (
    Conflict, InvalidInput, StorageError, UnsafeImage, Unsupported)
from ansible_collections.blockyard.storage.plugins.module_utils.plan import Plan
from ansible_collections.blockyard.storage.plugins.module_utils.targets.base import (
    Chap, Lun, TargetSpec, validate_iqn, validate_portal)

DEFAULT_IQN_PREFIX = 'iqn.2026-11.org.blockyard:'
DEFAULT_SECRETS_DIR = '/var/lib/blockyard/exports'
# no 0/O, 1/l/I: credentials an operator may have to read out or type
ALPHABET = 'abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789'
USERNAME_LENGTH, PASSWORD_LENGTH = 20, 16
MASK = '********'


# ------------------------------------------------------------------ CHAP store
class ChapStore:
    """CHAP credentials of the exports of one target host: one JSON file
    per target, mode 0600 in a 0700 directory, read only when it is a
    regular file of ours (no link), validated before use."""

    def __init__(self, directory):
        if not os.path.isabs(directory):
            raise InvalidInput('secrets_dir %r must be an absolute path.' % (directory,))
        self.directory = directory

    def path(self, iqn):
        return os.path.join(self.directory, '%s.chap' % iqn.replace(':', '_'))

    def read(self, iqn):
        self.check_directory()
        path = self.path(iqn)
        try:
            fd, st = fileio.open_regular(path, os.O_RDONLY, 'the CHAP credentials')
        except OSError as exc:
            if exc.errno == 2:
                return None
            raise fileio.os_error(exc, 'Reading the CHAP credentials of %s' % iqn, path)
        try:
            if stat.S_IMODE(st.st_mode) & 0o077 or st.st_uid != os.geteuid():
                raise UnsafeImage('The CHAP credentials %s of %s are readable by others (mode %o, owner %d): they '
                                  'may be known. Remove the file; the next run makes new ones.'
                                  % (path, iqn, stat.S_IMODE(st.st_mode), st.st_uid), path=path)
            raw = os.read(fd, 4096)
        finally:
            os.close(fd)
        try:
            data = json.loads(raw.decode('utf-8'))
            return Chap(data['username'], data['password'])
        except (ValueError, KeyError, TypeError, StorageError):
            raise InvalidInput('The CHAP credentials %s of %s cannot be read (not what this collection writes). '
                               'Remove the file; the next run makes new ones.' % (path, iqn), path=path)

    def check_directory(self, create=False):
        """The directory must be ours alone: a real directory (no link),
        owned by this user, mode 0700 (made so when create and absent). An
        existing directory is never chmod-ed: secrets_dir: /tmp must not
        change /tmp."""
        try:
            st = os.lstat(self.directory)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise fileio.os_error(exc, 'Reading secrets_dir', self.directory)
            if create:
                os.makedirs(self.directory, 0o700)
                os.chmod(self.directory, 0o700)
            return
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or stat.S_IMODE(st.st_mode) & 0o077:
            raise UnsafeImage('secrets_dir %s must be a directory of its own (not a link), owned by uid %d, mode '
                              '0700; it is %s, mode %o, owner %d. Give a dedicated directory (default %s).'
                              % (self.directory, os.geteuid(), 'a link' if stat.S_ISLNK(st.st_mode) else
                                 'a directory' if stat.S_ISDIR(st.st_mode) else 'not a directory',
                                 stat.S_IMODE(st.st_mode), st.st_uid, DEFAULT_SECRETS_DIR), path=self.directory)

    def write(self, iqn, chap):
        self.check_directory(create=True)
        path = self.path(iqn)
        fileio.atomic_write(path, json.dumps({'username': chap.username, 'password': chap.password}), mode=0o600)
        os.chmod(path, 0o600)

    def remove(self, iqn):
        fileio.unlink(self.path(iqn))


def new_chap():
    return Chap(''.join(secrets.choice(ALPHABET) for _i in range(USERNAME_LENGTH)),
                ''.join(secrets.choice(ALPHABET) for _i in range(PASSWORD_LENGTH)))


# ------------------------------------------------------------------ helpers
def target_iqn(prefix, name):
    """<prefix>volume-<name>, lowercase, '_' (not allowed in iSCSI names)
    written '-': a clash of two names is refused by _check_owner."""
    iqn = '%svolume-%s' % (prefix, name.lower().replace('_', '-'))
    return validate_iqn(iqn, 'The target name (iqn_prefix + volume-<name>)')


def check_connector(connector):
    if connector is None:
        return None
    if not isinstance(connector, dict):
        raise InvalidInput('connector must be a dict (ip, initiator, host, multipath), as os-brick sends it.')
    known = set(['ip', 'initiator', 'host', 'multipath', 'platform', 'os_type', 'wwpns', 'wwnns', 'nqn', 'uuid',
                 'do_local_attach', 'system uuid'])
    unknown = sorted(set(connector) - known)
    if unknown:
        raise InvalidInput('connector has unknown keys %s: give ip, initiator, host, multipath.' % ', '.join(unknown))
    if connector.get('initiator') is not None:
        validate_iqn(connector['initiator'], 'connector.initiator')
    return connector


def mode_of(params, native):
    """How the volume is handed out: 'nfs', 'glusterfs', 'rbd' (native:
    the backend's native_access), 'iscsi' / 'iser' (a target) or 'aoe'
    (vblade)."""
    protocol = params.get('protocol')
    if protocol in ('iscsi', 'iser', 'aoe'):
        return protocol
    return native['kind'] if native else 'iscsi'


def check_safe(volume, ref, block):
    """A LUN exposes guest data: the data reference must be raw, and no
    larger than the volume."""
    if ref.format not in ('raw', 'qcow2'):
        raise UnsafeImage('Volume %s has no known format (%r): it cannot be handed out. Adopt it first '
                          '(blockyard.storage.volume with format).' % (volume.name, ref.format))
    if block and ref.format != 'raw':
        raise Unsupported('Volume %s holds its data in a qcow2 container (%s%s): an iSCSI LUN must expose the guest '
                          'data, never the qcow2 image around it. Export it natively (a share: nfs/glusterfs '
                          'connection_info with format qcow2), or make a raw copy to export (blockyard.storage.volume '
                          'with source_volume: %s and format: raw).'
                          % (volume.name, ref.describe(),
                             ', the active overlay of its snapshots' if volume.snapshots else '', volume.name),
                          volume=volume.name)
    if ref.size is not None and volume.size is not None and ref.size > volume.size:
        raise UnsafeImage('Volume %s: its data (%s) holds %d bytes, above its size of %d bytes: refusing to hand it '
                          'out. Restate size with blockyard.storage.volume if another tool grew it.'
                          % (volume.name, ref.describe(), ref.size, volume.size))


# ------------------------------------------------------------------ the module's entry point
def ensure_export(params, check_mode):
    state = params.get('state') or 'present'
    connector = check_connector(params.get('connector'))
    name = params['volume']
    backend, notes = volumes.locate(dict(params, name=name), name)
    backend.validate_name(name)
    with volumes.locked(check_mode, (backend, name)):
        actions = backend.recover(name, check_mode)
        if state == 'absent' and not backend.exists(name) and params.get('protocol') == 'aoe':
            return False, {'export': {'volume': name, 'protocol': 'aoe', 'state': 'absent', 'aoe': None},
                           'actions': actions, 'location': backend.location}, {'before': {'state': 'absent'},
                                                                               'after': {'state': 'absent'}}
        if state == 'absent' and not backend.exists(name):
            changed_actions, result, diff = _remove_orphan(params, check_mode, name)
            result.update(actions=actions + changed_actions, location=backend.location)
            return bool(result['actions']), result, diff
        volume = backend.require(name)
        ref = backend.data_ref(volume)
        native = backend.native_access(volume)
        mode = mode_of(params, native)
        if mode == 'aoe':
            changed_actions, result, diff = _aoe_export(params, check_mode, state, connector, volume, ref)
        elif mode in ('iscsi', 'iser'):
            changed_actions, result, diff = _target_export(params, check_mode, state, connector, volume, ref, mode,
                                                           backend)
        else:
            changed_actions, result, diff = _native_export(params, state, volume, ref, native)
    actions += changed_actions
    result.update(actions=actions, location=backend.location)
    warnings = volumes.warnings_of(notes, backend) + result.pop('warnings', [])
    if warnings:
        result['warnings'] = warnings
    return bool(actions), result, diff


def _native_export(params, state, volume, ref, native):
    """A share or RBD volume: the hypervisor reads the storage itself; there
    is nothing to create or remove, only the connection_info to return."""
    mode = native['kind']
    result = {'export': {'volume': volume.name, 'protocol': mode, 'state': state}}
    if state == 'present':
        check_safe(volume, ref, block=False)
        if mode == 'rbd':
            info = connection_info.rbd(ref, native['hosts'], native['ports'], volume.name,
                                       secret_uuid=params.get('secret_uuid'))
        else:
            info = connection_info.share(mode, native['export'], os.path.basename(ref.path), ref.format,
                                         native.get('options'), params.get('mount_point_base'))
        result['connection_info'] = info
    diff = {'before': {'protocol': mode}, 'after': {'protocol': mode}}
    return [], result, diff


def _target_export(params, check_mode, state, connector, volume, ref, mode, backend):
    portal = params.get('portal')
    if state == 'present':
        check_safe(volume, ref, block=True)
        if not portal:
            raise InvalidInput('Volume %s is exported as an iSCSI LUN: give portal (the ip:port initiators reach the '
                               'target at, e.g. 192.0.2.10:3260).' % volume.name)
        validate_portal(portal)
    iqn = target_iqn(params.get('iqn_prefix') or DEFAULT_IQN_PREFIX, volume.name)
    store = ChapStore(params.get('secrets_dir') or DEFAULT_SECRETS_DIR)
    provider = targets.get(params.get('target_provider') or 'tgt')(params)
    current = provider.read(iqn)
    # the provider's serial, unique per target: a volume's name is not unique across locations, and multipath
    # takes two LUNs of one serial for one disk
    lun = Lun(provider.first_lun, ref)
    _check_owner(current, iqn, [ref] + ([backend.data_ref(volume, s.name) for s in volume.snapshots
                                         if not s.details.get('stale')] if state == 'absent' else []), volume)
    initiators = set(current['initiators']) if current else set()
    chap = None
    if state == 'absent' and connector and connector.get('initiator'):
        # terminate_connection: that initiator only
        if current is None or connector['initiator'] not in initiators:
            return [], _target_result(volume, iqn, provider, current, mode, state='present' if current else 'absent'), \
                _target_diff(current, current)
        initiators.discard(connector['initiator'])
        chap = store.read(iqn) if params.get('chap', True) else None
        if chap is None and current.get('chap_username'):
            raise Conflict('Target %s uses CHAP but its credentials %s are gone: detaching %s would drop CHAP from '
                           'it. Remove the export (state=absent without connector) and export the volume again.'
                           % (iqn, store.path(iqn), connector['initiator']))
        spec = TargetSpec(iqn, [lun], sorted(initiators), chap=chap, portals=_portals(params), iser=mode == 'iser')
        plan, _before = provider.plan_ensure(spec)
        return _run(plan, check_mode, volume, iqn, provider, current, mode, 'present', None,
                    spec=spec)
    if state == 'absent':
        plan, _before = provider.plan_remove(iqn) if current is not None else (Plan('export_absent'), None)
        if os.path.lexists(store.path(iqn)):
            plan.add('remove the CHAP credentials of %s' % iqn, store.remove, iqn)
        return _run(plan, check_mode, volume, iqn, provider, current, mode, 'absent', None)
    plan = Plan('export_present')
    if params.get('chap', True):
        chap = store.read(iqn)
        if chap is None and current is not None and current.get('chap_username'):
            plan.warnings.append('The CHAP credentials of %s were gone: new ones are made and its initiators must '
                                 'use them.' % iqn)
        if chap is None:
            chap = new_chap()
            plan.add('generate CHAP credentials for %s (kept in %s, mode 0600)' % (iqn, store.path(iqn)),
                     store.write, iqn, chap)
    if connector and connector.get('initiator'):
        initiators.add(connector['initiator'])
    spec = TargetSpec(iqn, [lun], sorted(initiators), chap=chap, portals=_portals(params), iser=mode == 'iser')
    target_plan, _before = provider.plan_ensure(spec)
    plan.extend(target_plan)
    return _run(plan, check_mode, volume, iqn, provider, current, mode, 'present', chap, portal,
                spec=spec)


def _aoe_summary(rec):
    if not rec:
        return {'state': 'absent'}
    return {'state': 'present', 'shelf': rec['shelf'], 'slot': rec['slot'], 'interface': rec['interface'],
            'path': rec['path'], 'unit': rec['unit']}


def _aoe_export(params, check_mode, state, connector, volume, ref):
    """An ATA over Ethernet export (vblade under a systemd unit). AoE has no
    initiator ACL: terminate_connection (absent with a connector) changes
    nothing, as in nova-volume's AoE driver."""
    export = aoe.AoeExport(volume.name, ref)
    if state == 'present':
        check_safe(volume, ref, block=False)
        plan, before = export.plan_present(params.get('aoe_interface'), params.get('aoe_shelf'),
                                           params.get('aoe_slot'))
    elif connector and connector.get('initiator'):
        plan, before = Plan('aoe_detach'), export.current()[0]
        before = before[0] if before else None
        plan.after = before
    else:
        plan, before = export.plan_absent()
    if plan and not check_mode:
        plan.execute()
    after = plan.after
    result = {'export': {'volume': volume.name, 'protocol': 'aoe', 'state': 'present' if after else 'absent',
                         'aoe': _aoe_summary(after) if after else None}}
    if state == 'present':
        result['connection_info'] = connection_info.aoe(after['shelf'], after['slot'])
    return plan.actions, result, {'before': _aoe_summary(before), 'after': _aoe_summary(after)}


def _remove_orphan(params, check_mode, name):
    """remove_export of a volume that is gone (deleted by another tool, or
    on another host): its target, found by the name this module gives it,
    and its credentials."""
    iqn = target_iqn(params.get('iqn_prefix') or DEFAULT_IQN_PREFIX, name)
    store = ChapStore(params.get('secrets_dir') or DEFAULT_SECRETS_DIR)
    provider = targets.get(params.get('target_provider') or 'tgt')(params)
    current = provider.read(iqn)
    plan = provider.plan_remove(iqn)[0] if current is not None else Plan('export_absent')
    if os.path.lexists(store.path(iqn)):
        plan.add('remove the CHAP credentials of %s' % iqn, store.remove, iqn)
    if plan and not check_mode:
        plan.execute()
    result = {'export': {'volume': name, 'protocol': 'iscsi', 'state': 'absent', 'target_iqn': iqn,
                         'provider': provider.name, 'target': None}}
    return plan.actions, result, _target_diff(current, None)


def _portals(params):
    """The portals the target listens on. tgt: the portal, checked against
    where tgtd listens (a wildcard covers it). LIO: the wildcard address of
    the portal's port, as targetcli makes it: the kernel refuses a specific
    address on a port where another target listens on the wildcard (and the
    reverse), so every export of a host shares 0.0.0.0:<port> (or [::]:<port>);
    the portal stays the address initiators are given (NAT, a service IP)."""
    portal = params.get('portal')
    if not portal:
        return []
    if (params.get('target_provider') or 'tgt') == 'lio':
        host, port = portal.rsplit(':', 1)
        return ['%s:%s' % ('[::]' if host.startswith('[') else '0.0.0.0', port)]
    return [portal]


def _check_owner(current, iqn, refs, volume):
    """A target of that name serving other data is not this volume's (two
    names that map to one IQN, or another tool's target). refs: the data
    the volume's target may serve (its active data; to remove it, any file
    of the volume, as after a snapshot taken by another tool)."""
    if current is None:
        return
    mine = set(r.path if r.kind != 'rbd' else '%s/%s' % (r.pool, r.image) for r in refs)
    for lun in current.get('luns', []):
        where = lun.get('path') if lun.get('kind') != 'rbd' else '%s/%s' % (lun.get('pool'), lun.get('image'))
        if where and where not in mine:
            raise Conflict('Target %s serves %s, which is not the data of volume %s (%s): refusing to change or '
                           'remove it. It belongs to another volume whose name maps to the same IQN, or to another '
                           'tool: use another iqn_prefix, or remove that target by hand.'
                           % (iqn, where, volume.name, ', '.join(sorted(mine))))


def _run(plan, check_mode, volume, iqn, provider, current, mode, state, chap, portal=None,
         spec=None):
    if plan and not check_mode:
        plan.execute()
        after = provider.read(iqn)
    else:
        after = current if not plan else _predicted(current, state, spec, provider)
    result = _target_result(volume, iqn, provider, after, mode, state)
    if plan.warnings or provider.warnings:
        result['warnings'] = plan.warnings + provider.warnings
    if state == 'present' and portal:
        result['connection_info'] = connection_info.iscsi(portal, iqn, provider.first_lun, volume.name, chap=chap,
                                                          iser=mode == 'iser')
    return plan.actions, result, _target_diff(current, after)


def _predicted(current, state, spec, provider):
    """What check mode reports: the target the plan would leave."""
    if state == 'absent' or spec is None:
        return None
    luns = []
    for lun in spec.luns:
        where = {'path': lun.ref.path} if lun.ref.kind != 'rbd' else {'pool': lun.ref.pool, 'image': lun.ref.image}
        luns.append(dict(where, lun=lun.number, kind=lun.ref.kind))
    return dict(current or {}, iqn=spec.iqn, luns=luns, initiators=list(spec.initiators),
                chap_username=spec.chap.username if spec.chap else None, predicted=True)


def _target_result(volume, iqn, provider, target, mode, state):
    return {'export': {'volume': volume.name, 'protocol': mode, 'state': state, 'target_iqn': iqn,
                       'target_lun': provider.first_lun, 'provider': provider.name, 'target': target}}


def _target_diff(before, after):
    def summary(target):
        if not target:
            return {'state': 'absent'}
        return {'state': 'present', 'initiators': list(target.get('initiators', [])),
                'luns': [dict(lun) for lun in target.get('luns', [])], 'chap_username': target.get('chap_username')}
    return {'before': summary(before), 'after': summary(after)}
