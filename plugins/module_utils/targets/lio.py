# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The LIO (Linux kernel) iSCSI target provider, driven through rtslib-fb
(Debian's python3-rtslib-fb), never by parsing targetcli output.

One target is one rtslib Target on the iscsi fabric with TPG 1: a LUN per
data reference (a fileio storage object for a file, a block storage object
for a block device; RBD images need a kernel-mapped device first), portals,
a NodeACL per initiator with its CHAP credentials and a MappedLUN per LUN,
or generate_node_acls for allow_all. Storage objects the provider creates
are named from the IQN and the LUN number (`by<8 hex of sha256(iqn)>_<lun>`,
at most 16 characters: the kernel derives the SCSI model string from the
first 16 characters of the name), so removing a target removes exactly the
storage objects it made and never one somebody else made (nor any data).
Every change ends with `RTSRoot().save_to_file()` so that rtslib-fb-targetctl
restores the target at boot."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import os

from ansible_collections.blockyard.storage.plugins.module_utils.errors import (
    Conflict, InvalidInput, MissingDependency, StorageError, Unsupported)
from ansible_collections.blockyard.storage.plugins.module_utils.plan import Plan
from ansible_collections.blockyard.storage.plugins.module_utils.targets.base import Provider, validate_iqn

try:
    import rtslib_fb
    RTSLIB_IMPORT_ERROR = None
except ImportError as exc:  # the registry turns it into MissingDependency at first use
    rtslib_fb = None
    RTSLIB_IMPORT_ERROR = exc

CONFIGFS_TARGET = '/sys/kernel/config/target'
DEFAULT_SAVE_FILE = '/etc/rtslib-fb-target/saveconfig.json'
DEFAULT_PORTAL = '0.0.0.0:3260'
TAG = 1
PLUGINS = {'file': 'fileio', 'block': 'block'}
KINDS = {'fileio': 'file', 'block': 'block'}
NO_CHAP = ('', '', '', '')


def so_name(iqn, lun):
    """The name of the storage object of LUN `lun` of target `iqn`."""
    return 'by%s_%d' % (hashlib.sha256(iqn.encode('utf-8')).hexdigest()[:8], int(lun))


def _split_portal(portal):
    ip, port = portal.rsplit(':', 1)
    return ip, int(port)


def _creds(chap, mutual):
    return (chap.username if chap else '', chap.password if chap else '',
            mutual.username if mutual else '', mutual.password if mutual else '')


def _text(value):
    return '' if value is None else str(value).strip()


class LioProvider(Provider):
    name = 'lio'
    first_lun = 0
    package = 'python3-rtslib-fb'

    def __init__(self, params):
        super(LioProvider, self).__init__(params)
        if rtslib_fb is None:
            raise MissingDependency(
                'Target provider lio needs python3-rtslib-fb (and targetcli-fb) on the target host, importable by the '
                'python that runs the module (Debian installs it for /usr/bin/python3: set ansible_python_interpreter '
                'to it): %s.' % (RTSLIB_IMPORT_ERROR,), provider='lio')
        self.save_file = (params or {}).get('saveconfig') or DEFAULT_SAVE_FILE

    # ---------------------------------------------------------------- access

    def _root(self, iqn):
        """RTSRoot, or a clear error when the kernel has no LIO/configfs.
        RTSRoot itself mounts configfs and loads target_core_mod when it can."""
        cause = None
        root = None
        try:
            root = rtslib_fb.RTSRoot()
        except (rtslib_fb.RTSLibError, OSError) as exc:
            cause = exc
        if root is None or not os.path.isdir(CONFIGFS_TARGET):
            raise Unsupported(
                'LIO target %s: %s is absent (%s): LIO needs the target_core_mod kernel module and configfs mounted '
                '(modprobe target_core_mod; mount -t configfs none /sys/kernel/config). This host\'s kernel lacks '
                'configfs or LIO (a container or a minimal kernel): use provider tgt.'
                % (iqn, CONFIGFS_TARGET, cause or 'rtslib found no LIO in configfs'), target=iqn, provider='lio')
        return root

    def _target(self, iqn, mode='lookup'):
        return rtslib_fb.Target(rtslib_fb.FabricModule('iscsi'), iqn, mode=mode)

    def _tpg(self, iqn):
        return rtslib_fb.TPG(self._target(iqn), TAG, mode='lookup')

    def _find_target(self, iqn):
        for target in rtslib_fb.FabricModule('iscsi').targets:
            if target.wwn == iqn:
                return target
        return None

    def _fail(self, iqn, what, exc):
        raise StorageError('LIO target %s: could not %s: %s. Check `dmesg` and `targetcli ls`; fix the cause and run '
                           'again (a re-run converges).' % (iqn, what, exc), target=iqn, provider='lio')

    def _do(self, iqn, what, func, *args):
        try:
            func(*args)
        except StorageError:
            raise
        except (rtslib_fb.RTSLibError, EnvironmentError, ValueError) as exc:
            self._fail(iqn, what, exc)

    # ----------------------------------------------------------------- reading

    def _state(self, iqn):
        """Everything about the target, secrets included: for comparisons
        only, never returned (see _public)."""
        target = self._find_target(iqn)
        if target is None:
            return None
        tpgs = [t for t in target.tpgs if t.tag == TAG]
        state = {'iqn': iqn, 'tpg': bool(tpgs), 'enabled': False, 'attributes': {}, 'tpg_chap': NO_CHAP,
                 'luns': {}, 'acls': {}, 'portals': {}}
        if not tpgs:
            return state
        tpg = tpgs[0]
        state['enabled'] = bool(tpg.enable)
        for attr in ('authentication', 'generate_node_acls', 'demo_mode_write_protect', 'cache_dynamic_acls'):
            try:
                state['attributes'][attr] = _text(tpg.get_attribute(attr))
            except rtslib_fb.RTSLibError:
                state['attributes'][attr] = ''
        state['tpg_chap'] = tuple(_text(getattr(tpg, 'chap_' + a)) for a in
                                  ('userid', 'password', 'mutual_userid', 'mutual_password'))
        for lun in tpg.luns:
            so = lun.storage_object
            try:
                write_cache = bool(so.write_back)
            except (rtslib_fb.RTSLibError, AttributeError, EnvironmentError, ValueError):
                write_cache = None
            try:
                size = int(so.size) if so.plugin == 'fileio' else None
            except (rtslib_fb.RTSLibError, AttributeError, EnvironmentError, ValueError, TypeError):
                size = None
            state['luns'][lun.lun] = {
                'lun': lun.lun, 'kind': KINDS.get(so.plugin, so.plugin), 'path': so.udev_path,
                'storage_object': '%s/%s' % (so.plugin, so.name), 'so_name': so.name, 'plugin': so.plugin,
                'ours': so.name == so_name(iqn, lun.lun), 'write_cache': write_cache, 'size': size}
        for acl in tpg.node_acls:
            state['acls'][acl.node_wwn] = {
                'chap': tuple(_text(getattr(acl, 'chap_' + a)) for a in
                              ('userid', 'password', 'mutual_userid', 'mutual_password')),
                'mapped': dict((m.mapped_lun, m.tpg_lun.lun) for m in acl.mapped_luns)}
        for portal in tpg.network_portals:
            state['portals']['%s:%d' % (portal.ip_address, portal.port)] = bool(portal.iser)
        return state

    @staticmethod
    def _public(state):
        if state is None:
            return None
        luns = [dict((k, v) for k, v in info.items() if k in ('lun', 'kind', 'path', 'storage_object', 'write_cache'))
                for _n, info in sorted(state['luns'].items())]
        caches = set(info['write_cache'] for info in state['luns'].values())
        acl_chaps = [acl['chap'] for _w, acl in sorted(state['acls'].items()) if acl['chap'][0]]
        allow_all = state['attributes'].get('generate_node_acls') == '1'
        chap = state['tpg_chap'] if allow_all and state['tpg_chap'][0] else (acl_chaps[0] if acl_chaps else NO_CHAP)
        return {
            'iqn': state['iqn'], 'provider': 'lio', 'enabled': state['enabled'], 'luns': luns,
            'initiators': sorted(state['acls']), 'allow_all': allow_all,
            'authentication': state['attributes'].get('authentication') == '1',
            'chap_username': chap[0] or None, 'chap_password_set': bool(chap[1]),
            'mutual_chap_username': chap[2] or None,
            'portals': sorted(state['portals']), 'iser': any(state['portals'].values()),
            'write_cache': caches.pop() if len(caches) == 1 else None,
        }

    def read(self, iqn):
        validate_iqn(iqn)
        self._root(iqn)
        try:
            return self._public(self._state(iqn))
        except rtslib_fb.RTSLibError as exc:
            self._fail(iqn, 'read the target', exc)

    # ---------------------------------------------------------------- planning

    def _check(self, spec):
        numbers = [lun.number for lun in spec.luns]
        if len(set(numbers)) != len(numbers):
            raise InvalidInput('LIO target %s: LUN numbers must be unique, got %s.' % (spec.iqn, numbers))
        for lun in spec.luns:
            ref = lun.ref
            if not 0 <= lun.number <= 255:
                raise InvalidInput('LIO target %s: LUN %d is out of range: LIO maps LUNs 0 to 255 to initiators.'
                                   % (spec.iqn, lun.number))
            if ref.kind == 'rbd':
                raise Unsupported(
                    'LIO target %s: LUN %d is the RBD image %s, which LIO cannot export directly: it needs a '
                    'kernel-mapped RBD device. Use provider tgt (with tgt-rbd), or map the image (rbd map) and '
                    'export the /dev/rbd device as a block LUN.' % (spec.iqn, lun.number, ref.describe()),
                    target=spec.iqn, provider='lio')
            if ref.kind not in PLUGINS:
                raise Unsupported('LIO target %s: LUN %d has data of kind %r: LIO exports files and block devices.'
                                  % (spec.iqn, lun.number, ref.kind), target=spec.iqn)
            if (ref.format or 'raw') != 'raw':
                raise InvalidInput('LIO target %s: LUN %d (%s) is %s: a target exports raw data only; convert the '
                                   'volume to raw first.' % (spec.iqn, lun.number, ref.describe(), ref.format))
            if not ref.path or not os.path.isabs(ref.path):
                raise InvalidInput('LIO target %s: LUN %d needs an absolute path, got %r.'
                                   % (spec.iqn, lun.number, ref.path))

    def _predict(self, spec):
        portals = spec.portals or [DEFAULT_PORTAL]
        return {
            'iqn': spec.iqn, 'provider': 'lio', 'enabled': True,
            'luns': [{'lun': lun.number, 'kind': lun.ref.kind, 'path': lun.ref.path,
                      'storage_object': '%s/%s' % (PLUGINS[lun.ref.kind], so_name(spec.iqn, lun.number)),
                      'write_cache': bool(spec.write_cache)}
                     for lun in sorted(spec.luns, key=lambda item: item.number)],
            'initiators': list(spec.initiators), 'allow_all': spec.allow_all,
            'authentication': spec.chap is not None,
            'chap_username': spec.chap.username if spec.chap else None, 'chap_password_set': spec.chap is not None,
            'mutual_chap_username': spec.mutual_chap.username if spec.mutual_chap else None,
            'portals': sorted(portals), 'iser': spec.iser, 'write_cache': bool(spec.write_cache),
        }

    @staticmethod
    def _lun_change(iqn, cur, want, write_cache):
        """None (same), 'cache' (a block LUN's write cache attribute) or a
        reason to recreate the LUN."""
        ref = want.ref
        if cur['kind'] != ref.kind or cur['path'] != ref.path:
            return 'it is %s %s, wanted %s %s' % (cur['kind'], cur['path'], ref.kind, ref.path)
        if not cur['ours']:
            return 'its storage object %s was not made for this target' % cur['storage_object']
        if ref.kind == 'file' and ref.size and cur['size'] is not None and cur['size'] != ref.size:
            return 'the file is %d bytes now, the LUN %d' % (ref.size, cur['size'])
        if write_cache is not None and cur['write_cache'] is not None and bool(write_cache) != cur['write_cache']:
            return 'cache' if ref.kind == 'block' else 'the write cache of a fileio LUN is set when it is made'
        return None

    def plan_ensure(self, spec):
        self._check(spec)
        iqn = spec.iqn
        root = self._root(iqn)
        try:
            state = self._state(iqn)
            leftovers = dict(((so.plugin, so.name), so) for so in root.storage_objects
                             if so.name in set(so_name(iqn, lun.number) for lun in spec.luns))
        except rtslib_fb.RTSLibError as exc:
            self._fail(iqn, 'read the target', exc)
        before = self._public(state)
        plan = Plan('lio')
        plan.after = self._predict(spec)
        if state is None:
            plan.add('create LIO iSCSI target %s' % iqn, self._do, iqn, 'create the target', self._create_target, iqn)
            plan.on_failure(self._undo_create, iqn, [so_name(iqn, lun.number) for lun in spec.luns])
            state = {'tpg': False, 'enabled': False, 'attributes': {}, 'tpg_chap': NO_CHAP, 'luns': {}, 'acls': {},
                     'portals': {}}
        if not state['tpg']:
            plan.add('create TPG %d of target %s' % (TAG, iqn), self._do, iqn, 'create TPG %d' % TAG,
                     self._create_tpg, iqn)

        want_luns = dict((lun.number, lun) for lun in spec.luns)
        removed = set()
        for number, cur in sorted(state['luns'].items()):
            want = want_luns.get(number)
            change = 'not wanted' if want is None else self._lun_change(iqn, cur, want, spec.write_cache)
            if change is None:
                continue
            if change == 'cache':
                text = '%s the write cache of LUN %d (block %s)' % (
                    'enable' if spec.write_cache else 'disable', number, cur['path'])
                plan.add(text, self._do, iqn, text, self._set_block_cache, cur['so_name'], spec.write_cache)
                continue
            removed.add(number)
            text = 'remove LUN %d (%s %s) from target %s%s' % (
                number, cur['kind'], cur['path'], iqn, '' if want is None else ' to recreate it: %s' % change)
            plan.add(text, self._do, iqn, text, self._delete_lun, iqn, number)
            if cur['ours']:
                self._plan_so_removal(plan, iqn, cur)
                leftovers.pop((cur['plugin'], cur['so_name']), None)

        for number, lun in sorted(want_luns.items()):
            if number in state['luns'] and number not in removed:
                continue
            name = so_name(iqn, number)
            for (plugin, left_name), so in sorted(leftovers.items()):
                if left_name != name:
                    continue
                if list(so.attached_luns):
                    raise Conflict('LIO target %s: storage object %s/%s is attached to another target; it cannot '
                                   'be reused for LUN %d. Remove it (targetcli /backstores/%s delete %s) or use '
                                   'another IQN.' % (iqn, plugin, name, number, plugin, name), target=iqn)
                text = 'remove leftover storage object %s/%s (an interrupted run made it; the data stays)' % (
                    plugin, name)
                plan.add(text, self._do, iqn, text, self._delete_so, plugin, name)
            ref = lun.ref
            text = 'create %s storage object %s on %s%s' % (
                PLUGINS[ref.kind], name, ref.path, ' (write cache on)' if spec.write_cache else '')
            plan.add(text, self._do, iqn, text, self._create_so, name, ref, spec.write_cache)
            text = 'export LUN %d (%s %s) on target %s' % (number, ref.kind, ref.path, iqn)
            plan.add(text, self._do, iqn, text, self._create_lun, iqn, number, PLUGINS[ref.kind], name)

        self._plan_acls(plan, spec, state, removed)
        self._plan_tpg(plan, spec, state)
        self._plan_portals(plan, spec, state)
        if not state['enabled']:
            plan.add('enable TPG %d of target %s' % (TAG, iqn), self._do, iqn, 'enable the TPG', self._enable, iqn)
        if plan:
            text = 'save the LIO configuration to %s (restored at boot by rtslib-fb-targetctl)' % self.save_file
            plan.add(text, self._do, iqn, 'save the configuration to %s' % self.save_file, self._save)
            plan.add('', self._verify, spec)
        return plan, before

    def _plan_so_removal(self, plan, iqn, cur):
        text = 'remove storage object %s (the %s %s itself stays)' % (cur['storage_object'], cur['kind'], cur['path'])
        plan.add(text, self._do, iqn, text, self._delete_so, cur['plugin'], cur['so_name'])

    def _plan_acls(self, plan, spec, state, removed):
        iqn = spec.iqn
        wanted = set(lun.number for lun in spec.luns)
        creds = _creds(spec.chap, spec.mutual_chap)
        for wwn in sorted(set(state['acls']) - set(spec.initiators)):
            text = 'remove the ACL of initiator %s' % wwn
            plan.add(text, self._do, iqn, text, self._delete_acl, iqn, wwn)
        for wwn in spec.initiators:
            cur = state['acls'].get(wwn)
            if cur is None:
                text = 'allow initiator %s (ACL mapping LUN%s %s%s)' % (
                    wwn, 's' if len(wanted) != 1 else '', ', '.join(str(n) for n in sorted(wanted)) or 'none',
                    ', CHAP user %s' % creds[0] if creds[0] else '')
                plan.add(text, self._do, iqn, text, self._create_acl, iqn, wwn, creds, sorted(wanted))
                continue
            mapped = dict((m, t) for m, t in cur['mapped'].items() if t not in removed)
            for number in sorted(mapped):
                if number not in wanted or mapped[number] != number:
                    text = 'unmap LUN %d for initiator %s' % (number, wwn)
                    plan.add(text, self._do, iqn, text, self._delete_mapped, iqn, wwn, number)
            for number in sorted(wanted):
                if mapped.get(number) != number:
                    text = 'map LUN %d for initiator %s' % (number, wwn)
                    plan.add(text, self._do, iqn, text, self._create_mapped, iqn, wwn, number)
            if cur['chap'] != creds:
                text = self._chap_text('initiator %s' % wwn, cur['chap'], creds)
                plan.add(text, self._do, iqn, text, self._set_acl_chap, iqn, wwn, creds)

    @staticmethod
    def _chap_text(who, cur, new):
        if not new[0]:
            return 'remove the CHAP credentials of %s' % who
        parts = []
        if cur[0] != new[0] or cur[1] != new[1]:
            parts.append('CHAP user %s%s' % (new[0], '' if cur[0] != new[0] else ' (new password)'))
        if cur[2] != new[2] or cur[3] != new[3]:
            parts.append('mutual CHAP user %s' % new[2] if new[2] else 'no mutual CHAP')
        return 'set %s for %s' % (' and '.join(parts), who)

    def _plan_tpg(self, plan, spec, state):
        iqn = spec.iqn
        attrs = state['attributes']
        want = [('authentication', '1' if spec.chap else '0')]
        if spec.allow_all:
            want += [('generate_node_acls', '1'), ('cache_dynamic_acls', '1'), ('demo_mode_write_protect', '0')]
        else:
            want += [('generate_node_acls', '0')]
        changes = [(k, v) for k, v in want if attrs.get(k) != v]
        if changes:
            labels = []
            for key, value in changes:
                if key == 'authentication':
                    labels.append('%s CHAP authentication' % ('require' if value == '1' else 'do not require'))
                elif key == 'generate_node_acls':
                    labels.append('allow all initiators' if value == '1' else 'allow only the initiators in ACLs')
                else:
                    labels.append('%s=%s' % (key, value))
            text = '%s on TPG %d of target %s' % ('; '.join(labels), TAG, iqn)
            plan.add(text, self._do, iqn, text, self._set_attributes, iqn, changes)
        tpg_creds = _creds(spec.chap, spec.mutual_chap) if spec.allow_all else NO_CHAP
        if state['tpg_chap'] != tpg_creds:
            text = self._chap_text('all initiators (TPG %d)' % TAG, state['tpg_chap'], tpg_creds)
            plan.add(text, self._do, iqn, text, self._set_tpg_chap, iqn, tpg_creds)

    def _plan_portals(self, plan, spec, state):
        iqn = spec.iqn
        want = spec.portals or [DEFAULT_PORTAL]
        for portal in sorted(set(state['portals']) - set(want)):
            text = 'remove portal %s from target %s' % (portal, iqn)
            plan.add(text, self._do, iqn, text, self._delete_portal, iqn, portal)
        for portal in want:
            if portal not in state['portals']:
                text = 'add portal %s%s to target %s' % (portal, ' (iSER)' if spec.iser else '', iqn)
                plan.add(text, self._do, iqn, text, self._create_portal, iqn, portal, spec.iser)
            elif state['portals'][portal] != spec.iser:
                text = '%s iSER on portal %s of target %s' % ('enable' if spec.iser else 'disable', portal, iqn)
                plan.add(text, self._do, iqn, text, self._set_iser, iqn, portal, spec.iser)

    def plan_remove(self, iqn):
        validate_iqn(iqn)
        self._root(iqn)
        try:
            state = self._state(iqn)
        except rtslib_fb.RTSLibError as exc:
            self._fail(iqn, 'read the target', exc)
        plan = Plan('lio')
        plan.after = None
        if state is None:
            return plan, None
        text = 'remove LIO iSCSI target %s (its TPG, LUNs, ACLs and portals)' % iqn
        plan.add(text, self._do, iqn, 'remove the target', self._delete_target, iqn)
        for number, cur in sorted(state['luns'].items()):
            if cur['ours']:
                self._plan_so_removal(plan, iqn, cur)
        text = 'save the LIO configuration to %s (restored at boot by rtslib-fb-targetctl)' % self.save_file
        plan.add(text, self._do, iqn, 'save the configuration to %s' % self.save_file, self._save)
        return plan, self._public(state)

    # ----------------------------------------------------------------- actions

    def _create_target(self, iqn):
        self._target(iqn, mode='create')

    def _create_tpg(self, iqn):
        rtslib_fb.TPG(self._target(iqn), TAG, mode='create')

    def _undo_create(self, iqn, names):
        target = self._find_target(iqn)
        if target is not None:
            target.delete()
        for so in list(rtslib_fb.RTSRoot().storage_objects):
            if so.name in names:
                so.delete()

    def _create_so(self, name, ref, write_cache):
        if ref.kind == 'file':
            size = ref.size or os.path.getsize(ref.path)
            rtslib_fb.FileIOStorageObject(name, dev=ref.path, size=size, write_back=bool(write_cache))
        else:
            so = rtslib_fb.BlockStorageObject(name, dev=ref.path)
            if write_cache:
                # rtslib's BlockStorageObject accepts write_back but ignores it
                so.set_attribute('emulate_write_cache', 1)

    def _storage_object(self, plugin, name):
        cls = rtslib_fb.FileIOStorageObject if plugin == 'fileio' else rtslib_fb.BlockStorageObject
        return cls(name)

    def _set_block_cache(self, name, write_cache):
        self._storage_object('block', name).set_attribute('emulate_write_cache', 1 if write_cache else 0)

    def _delete_so(self, plugin, name):
        try:
            so = self._storage_object(plugin, name)
        except rtslib_fb.RTSLibNotInCFS:
            return
        so.delete()

    def _create_lun(self, iqn, number, plugin, name):
        rtslib_fb.LUN(self._tpg(iqn), number, self._storage_object(plugin, name))

    def _delete_lun(self, iqn, number):
        rtslib_fb.LUN(self._tpg(iqn), number).delete()

    def _acl(self, iqn, wwn):
        return rtslib_fb.NodeACL(self._tpg(iqn), wwn, mode='lookup')

    @staticmethod
    def _write_chap(node, creds):
        node.chap_userid, node.chap_password, node.chap_mutual_userid, node.chap_mutual_password = creds

    def _create_acl(self, iqn, wwn, creds, numbers):
        tpg = self._tpg(iqn)
        acl = rtslib_fb.NodeACL(tpg, wwn, mode='create')
        if creds[0]:
            self._write_chap(acl, creds)
        for number in numbers:
            rtslib_fb.MappedLUN(acl, number, number)

    def _delete_acl(self, iqn, wwn):
        self._acl(iqn, wwn).delete()

    def _set_acl_chap(self, iqn, wwn, creds):
        self._write_chap(self._acl(iqn, wwn), creds)

    def _create_mapped(self, iqn, wwn, number):
        rtslib_fb.MappedLUN(self._acl(iqn, wwn), number, number)

    def _delete_mapped(self, iqn, wwn, number):
        rtslib_fb.MappedLUN(self._acl(iqn, wwn), number).delete()

    def _set_attributes(self, iqn, changes):
        tpg = self._tpg(iqn)
        for key, value in changes:
            tpg.set_attribute(key, value)

    def _set_tpg_chap(self, iqn, creds):
        self._write_chap(self._tpg(iqn), creds)

    def _create_portal(self, iqn, portal, iser):
        ip, port = _split_portal(portal)
        try:
            np = rtslib_fb.NetworkPortal(self._tpg(iqn), ip, port, mode='create')
        except rtslib_fb.RTSLibError as exc:
            others = self._portals_on_port(iqn, port)
            if others:
                # measured on Linux 6.1: LIO binds one socket per ip:port for all targets; a specific address
                # and the wildcard on one port exclude each other
                raise Conflict('LIO target %s: portal %s cannot be added (%s): other targets listen on port %d at %s, '
                               'and the kernel refuses a specific address and the wildcard on one port. Use the '
                               'same portal as they do (0.0.0.0:%d, what targetcli makes by default), or another '
                               'port.' % (iqn, portal, exc, port, ', '.join(others), port), target=iqn)
            raise
        if iser:
            np.iser = True

    @staticmethod
    def _portals_on_port(iqn, port):
        found = []
        for target in rtslib_fb.FabricModule('iscsi').targets:
            if target.wwn == iqn:
                continue
            for tpg in target.tpgs:
                for np in tpg.network_portals:
                    if np.port == port:
                        found.append('%s:%d (%s)' % (np.ip_address, np.port, target.wwn))
        return sorted(found)

    def _delete_portal(self, iqn, portal):
        ip, port = _split_portal(portal)
        rtslib_fb.NetworkPortal(self._tpg(iqn), ip, port, mode='lookup').delete()

    def _set_iser(self, iqn, portal, iser):
        ip, port = _split_portal(portal)
        rtslib_fb.NetworkPortal(self._tpg(iqn), ip, port, mode='lookup').iser = bool(iser)

    def _enable(self, iqn):
        self._tpg(iqn).enable = True

    def _delete_target(self, iqn):
        target = self._find_target(iqn)
        if target is not None:
            target.delete()

    def _save(self):
        directory = os.path.dirname(self.save_file)
        if directory and not os.path.isdir(directory):
            os.makedirs(directory, 0o700)
        try:
            rtslib_fb.RTSRoot().save_to_file(self.save_file)
        except NameError as exc:
            # rtslib-fb 2.1.75 raises an undefined ExecutionError when it cannot open the file
            raise EnvironmentError('cannot write %s.temp (%s)' % (self.save_file, exc))

    def _verify(self, spec):
        got = self._public(self._state(spec.iqn))
        want = self._predict(spec)
        problems = []
        if got is None:
            problems.append('the target is missing')
        else:
            for key in ('initiators', 'portals', 'allow_all', 'authentication', 'enabled'):
                if got[key] != want[key]:
                    problems.append('%s is %r, wanted %r' % (key, got[key], want[key]))
            have = [(lun['lun'], lun['kind'], lun['path']) for lun in got['luns']]
            need = [(lun['lun'], lun['kind'], lun['path']) for lun in want['luns']]
            if have != need:
                problems.append('LUNs are %r, wanted %r' % (have, need))
        if problems:
            raise StorageError('LIO target %s does not match the request after the changes: %s. Check `targetcli ls` '
                               'and `dmesg`, then run again.' % (spec.iqn, '; '.join(problems)), target=spec.iqn)


PROVIDER = LioProvider
