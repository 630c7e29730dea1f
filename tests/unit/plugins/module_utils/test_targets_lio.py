# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The LIO provider (targets/lio.py) against an in-memory rtslib_fb
(fake_rtslib.py): this host has no configfs. The last tests hold the fake
to the real rtslib_fb of /usr/bin/python3 (names and signatures)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import fake_rtslib  # noqa: E402

sys.modules.setdefault('rtslib_fb', fake_rtslib.module())

from ansible_collections.blockyard.storage.plugins.module_utils.errors import (  # noqa: E402
    Conflict, InvalidInput, MissingDependency, StorageError, Unsupported)
from ansible_collections.blockyard.storage.plugins.module_utils.model import DataRef  # noqa: E402
from ansible_collections.blockyard.storage.plugins.module_utils.targets import lio  # noqa: E402
from ansible_collections.blockyard.storage.plugins.module_utils.targets import get as get_provider  # noqa: E402
from ansible_collections.blockyard.storage.plugins.module_utils.targets.base import (  # noqa: E402
    Chap, Lun, TargetSpec)

IQN = 'iqn.2026-11.org.example:db01'
INI_A = 'iqn.2026-11.org.example:host-a'
INI_B = 'iqn.2026-11.org.example:host-b'
INI_C = 'iqn.2026-11.org.example:host-c'
PASSWORD = 'Secret-pass-123'
SIZE = 1 << 30
REAL_RTSLIB = '/usr/lib/python3/dist-packages/rtslib_fb'


@pytest.fixture
def fake(monkeypatch, tmp_path):
    state = fake_rtslib.reset()
    monkeypatch.setattr(lio, 'rtslib_fb', fake_rtslib.module())
    configfs = tmp_path / 'configfs-target'
    configfs.mkdir()
    monkeypatch.setattr(lio, 'CONFIGFS_TARGET', str(configfs))
    return state


@pytest.fixture
def provider(fake, tmp_path):
    return lio.LioProvider({'saveconfig': str(tmp_path / 'etc' / 'saveconfig.json')})


def file_lun(number, path='/srv/volumes/volume-db01', size=SIZE):
    return Lun(number, DataRef('file', 'raw', size, path=path))


def spec(**kwargs):
    kwargs.setdefault('luns', [file_lun(0)])
    return TargetSpec(IQN, **kwargs)


def chap(user='db01user', password=PASSWORD):
    return Chap(user, password)


def apply(provider, target_spec):
    plan, before = provider.plan_ensure(target_spec)
    plan.execute()
    return plan, before


def tpg_path():
    return '/iscsi/%s/tpgt_1' % IQN


def test_names_are_short_unique_and_stable():
    names = set(lio.so_name(IQN, n) for n in range(256))
    assert len(names) == 256
    assert all(len(lio.so_name(IQN, n)) <= 16 for n in (0, 255, 65535))
    assert lio.so_name(IQN, 0) == lio.so_name(IQN, 0) != lio.so_name(IQN + 'x', 0)


def test_registry_loads_the_provider(fake):
    cls = get_provider('lio')
    assert cls is lio.LioProvider and cls.first_lun == 0 and cls.name == 'lio'


def test_create_file_lun_with_chap_and_two_acls(provider, fake, tmp_path):
    target_spec = spec(initiators=[INI_B, INI_A], chap=chap())
    plan, before = provider.plan_ensure(target_spec)
    assert before is None
    name = lio.so_name(IQN, 0)
    save = str(tmp_path / 'etc' / 'saveconfig.json')
    assert plan.actions == [
        'create LIO iSCSI target %s' % IQN,
        'create TPG 1 of target %s' % IQN,
        'create fileio storage object %s on /srv/volumes/volume-db01' % name,
        'export LUN 0 (file /srv/volumes/volume-db01) on target %s' % IQN,
        'allow initiator %s (ACL mapping LUN 0, CHAP user db01user)' % INI_A,
        'allow initiator %s (ACL mapping LUN 0, CHAP user db01user)' % INI_B,
        'require CHAP authentication; allow only the initiators in ACLs on TPG 1 of target %s' % IQN,
        'add portal 0.0.0.0:3260 to target %s' % IQN,
        'enable TPG 1 of target %s' % IQN,
        'save the LIO configuration to %s (restored at boot by rtslib-fb-targetctl)' % save,
    ]
    assert not any(PASSWORD in text for text in plan.actions)
    assert fake.nodes == {}                     # planning changed nothing
    plan.execute()

    tpg = tpg_path()
    so = '/core/fileio/%s' % name
    assert [c for c in fake.calls if c[0] in ('mkdir', 'control', 'save')] == [
        ('mkdir', '_Fabric', '/iscsi'),
        ('mkdir', 'Target', '/iscsi/' + IQN),
        ('mkdir', 'TPG', tpg),
        ('mkdir', 'FileIOStorageObject', so),
        ('control', so, 'fd_dev_name=/srv/volumes/volume-db01,fd_dev_size=%d' % SIZE),
        ('mkdir', 'LUN', tpg + '/lun/lun_0'),
        ('mkdir', 'NodeACL', tpg + '/acls/' + INI_A),
        ('mkdir', 'MappedLUN', tpg + '/acls/%s/lun_0' % INI_A),
        ('mkdir', 'NodeACL', tpg + '/acls/' + INI_B),
        ('mkdir', 'MappedLUN', tpg + '/acls/%s/lun_0' % INI_B),
        ('mkdir', 'NetworkPortal', tpg + '/np/0.0.0.0:3260'),
        ('save', save),
    ]
    for ini in (INI_A, INI_B):
        acl = fake.nodes[tpg + '/acls/' + ini]
        assert acl['auth'] == {'userid': 'db01user', 'password': PASSWORD, 'userid_mutual': '',
                               'password_mutual': ''}
        assert fake.nodes[tpg + '/acls/%s/lun_0' % ini]['tpg_lun'] == 0
    assert fake.nodes[tpg]['attrib']['authentication'] == '1'
    assert fake.nodes[tpg]['attrib']['generate_node_acls'] == '0'
    assert fake.nodes[tpg]['enable'] is True
    assert fake.nodes[tpg + '/lun/lun_0']['so'] == ('fileio', name)
    assert fake.nodes[so]['attrib']['emulate_write_cache'] == '0'
    assert len(fake.saved) == 1

    info = provider.read(IQN)
    assert info == {
        'iqn': IQN, 'provider': 'lio', 'enabled': True,
        'luns': [{'lun': 0, 'kind': 'file', 'path': '/srv/volumes/volume-db01',
                  'storage_object': 'fileio/' + name, 'write_cache': False}],
        'initiators': [INI_A, INI_B], 'allow_all': False, 'authentication': True,
        'chap_username': 'db01user', 'chap_password_set': True, 'mutual_chap_username': None,
        'portals': ['0.0.0.0:3260'], 'iser': False, 'write_cache': False,
    }
    assert plan.after == info


def test_same_spec_again_is_an_empty_plan(provider, fake):
    target_spec = spec(initiators=[INI_A, INI_B], chap=chap(), mutual_chap=Chap('targetuser', 'Other-pass-456'))
    apply(provider, target_spec)
    calls = len(fake.calls)
    plan, before = provider.plan_ensure(target_spec)
    assert plan.actions == [] and not plan
    assert before['initiators'] == [INI_A, INI_B]
    assert before['mutual_chap_username'] == 'targetuser'
    plan.execute()
    assert len(fake.calls) == calls and len(fake.saved) == 1


def test_add_and_remove_an_initiator_changes_only_that_acl(provider, fake):
    apply(provider, spec(initiators=[INI_A, INI_B], chap=chap()))
    snapshot = dict(fake.nodes)
    start = len(fake.calls)
    plan, _before = apply(provider, spec(initiators=[INI_A, INI_C], chap=chap()))
    assert plan.actions[:-1] == [
        'remove the ACL of initiator %s' % INI_B,
        'allow initiator %s (ACL mapping LUN 0, CHAP user db01user)' % INI_C,
    ]
    changed = [c for c in fake.calls[start:] if c[0] != 'save']
    assert changed and all(INI_B in ' '.join(map(str, c)) or INI_C in ' '.join(map(str, c)) for c in changed)
    tpg = tpg_path()
    assert tpg + '/acls/' + INI_B not in fake.nodes
    assert tpg + '/acls/%s/lun_0' % INI_C in fake.nodes
    for path, data in snapshot.items():           # everything else untouched
        if INI_B not in path:
            assert fake.nodes[path] == data
    assert provider.read(IQN)['initiators'] == [INI_A, INI_C]


def test_change_chap_password_and_user(provider, fake):
    apply(provider, spec(initiators=[INI_A], chap=chap()))
    plan, _before = apply(provider, spec(initiators=[INI_A], chap=chap(password='Brand-new-pass-9')))
    assert plan.actions[0] == 'set CHAP user db01user (new password) for initiator %s' % INI_A
    assert len(plan.actions) == 2
    assert fake.nodes[tpg_path() + '/acls/' + INI_A]['auth']['password'] == 'Brand-new-pass-9'
    plan, _before = apply(provider, spec(initiators=[INI_A], chap=chap(user='other')))
    assert plan.actions[0] == 'set CHAP user other for initiator %s' % INI_A
    plan, _before = apply(provider, spec(initiators=[INI_A]))
    assert plan.actions[:2] == [
        'remove the CHAP credentials of initiator %s' % INI_A,
        'do not require CHAP authentication on TPG 1 of target %s' % IQN]
    assert fake.nodes[tpg_path() + '/acls/' + INI_A]['auth']['userid'] == ''
    assert fake.nodes[tpg_path()]['attrib']['authentication'] == '0'
    info = provider.read(IQN)
    assert info['chap_username'] is None and not info['chap_password_set'] and not info['authentication']


def test_allow_all_with_chap_sets_the_tpg(provider, fake):
    plan, _before = apply(provider, spec(allow_all=True, chap=chap()))
    tpg = fake.nodes[tpg_path()]
    assert tpg['attrib'] == {'authentication': '1', 'generate_node_acls': '1', 'cache_dynamic_acls': '1',
                             'demo_mode_write_protect': '0'}
    assert tpg['auth']['userid'] == 'db01user' and tpg['auth']['password'] == PASSWORD
    assert ('allow all initiators' in plan.actions[4]) and 'demo_mode_write_protect=0' in plan.actions[4]
    info = provider.read(IQN)
    assert info['allow_all'] and info['initiators'] == [] and info['chap_username'] == 'db01user'
    assert not provider.plan_ensure(spec(allow_all=True, chap=chap()))[0]
    plan, _before = apply(provider, spec(initiators=[INI_A]))
    assert 'allow only the initiators in ACLs' in ' '.join(plan.actions)
    assert 'remove the CHAP credentials of all initiators (TPG 1)' in plan.actions
    assert fake.nodes[tpg_path()]['attrib']['generate_node_acls'] == '0'
    assert fake.nodes[tpg_path()]['auth']['password'] == ''


def test_luns_portals_iser_and_write_cache(provider, fake):
    apply(provider, spec(initiators=[INI_A]))
    block = Lun(1, DataRef('block', 'raw', SIZE, path='/dev/vg0/volume-db02'))
    new = spec(luns=[file_lun(0), block], initiators=[INI_A], portals=['127.0.0.1:3260', '[::1]:3261'], iser=True)
    plan, _before = apply(provider, new)
    tpg = tpg_path()
    assert plan.actions[:-1] == [
        'create block storage object %s on /dev/vg0/volume-db02' % lio.so_name(IQN, 1),
        'export LUN 1 (block /dev/vg0/volume-db02) on target %s' % IQN,
        'map LUN 1 for initiator %s' % INI_A,
        'remove portal 0.0.0.0:3260 from target %s' % IQN,
        'add portal 127.0.0.1:3260 (iSER) to target %s' % IQN,
        'add portal [::1]:3261 (iSER) to target %s' % IQN,
    ]
    assert fake.nodes[tpg + '/np/[::1]:3261']['iser'] is True
    assert fake.nodes[tpg + '/acls/%s/lun_1' % INI_A]['tpg_lun'] == 1
    info = provider.read(IQN)
    assert info['portals'] == ['127.0.0.1:3260', '[::1]:3261'] and info['iser']
    # the block LUN's cache is an attribute; a fileio LUN is recreated (and re-mapped)
    cached = spec(luns=[file_lun(0), block], initiators=[INI_A], portals=['127.0.0.1:3260', '[::1]:3261'],
                  iser=True, write_cache=True)
    plan, _before = apply(provider, cached)
    name0 = lio.so_name(IQN, 0)
    assert plan.actions[:-1] == [
        'remove LUN 0 (file /srv/volumes/volume-db01) from target %s to recreate it: the write cache of a '
        'fileio LUN is set when it is made' % IQN,
        'remove storage object fileio/%s (the file /srv/volumes/volume-db01 itself stays)' % name0,
        'enable the write cache of LUN 1 (block /dev/vg0/volume-db02)',
        'create fileio storage object %s on /srv/volumes/volume-db01 (write cache on)' % name0,
        'export LUN 0 (file /srv/volumes/volume-db01) on target %s' % IQN,
        'map LUN 0 for initiator %s' % INI_A,
    ]
    assert provider.read(IQN)['write_cache'] is True
    assert not provider.plan_ensure(cached)[0]
    # a LUN removed, iSER off
    plan, _before = apply(provider, spec(luns=[file_lun(0)], initiators=[INI_A],
                                         portals=['127.0.0.1:3260', '[::1]:3261'], write_cache=True))
    assert plan.actions[:-1] == [
        'remove LUN 1 (block /dev/vg0/volume-db02) from target %s' % IQN,
        'remove storage object block/%s (the block /dev/vg0/volume-db02 itself stays)' % lio.so_name(IQN, 1),
        'disable iSER on portal 127.0.0.1:3260 of target %s' % IQN,
        'disable iSER on portal [::1]:3261 of target %s' % IQN,
    ]
    assert tpg + '/acls/%s/lun_1' % INI_A not in fake.nodes
    assert '/core/block/' + lio.so_name(IQN, 1) not in fake.nodes


def test_a_foreign_storage_object_is_unlinked_never_deleted(provider, fake):
    apply(provider, spec())
    rts = lio.rtslib_fb
    tpg = rts.TPG(rts.Target(rts.FabricModule('iscsi'), IQN), 1)
    rts.FileIOStorageObject('theirs', dev='/srv/other', size=SIZE)
    rts.LUN(tpg, 3, rts.FileIOStorageObject('theirs'))
    plan, before = apply(provider, spec())
    assert [lun['storage_object'] for lun in before['luns']] == ['fileio/' + lio.so_name(IQN, 0), 'fileio/theirs']
    assert plan.actions[:-1] == ['remove LUN 3 (file /srv/other) from target %s' % IQN]
    assert '/core/fileio/theirs' in fake.nodes


def test_a_leftover_storage_object_of_an_interrupted_run_is_replaced(provider, fake):
    lio.rtslib_fb.FileIOStorageObject(lio.so_name(IQN, 0), dev='/srv/old', size=1)
    plan, _before = apply(provider, spec())
    assert plan.actions[2] == ('remove leftover storage object fileio/%s (an interrupted run made it; the data '
                               'stays)' % lio.so_name(IQN, 0))
    assert fake.nodes['/core/fileio/' + lio.so_name(IQN, 0)]['dev'] == '/srv/volumes/volume-db01'


def test_remove_deletes_the_target_and_its_storage_objects_only(provider, fake, tmp_path):
    backing = tmp_path / 'volume-db01'
    backing.write_bytes(b'data')
    apply(provider, spec(luns=[file_lun(0, path=str(backing), size=None)], initiators=[INI_A], chap=chap()))
    assert fake.nodes['/core/fileio/' + lio.so_name(IQN, 0)]['size'] == 4     # size read from the file
    lio.rtslib_fb.FileIOStorageObject('theirs', dev='/srv/other', size=SIZE)
    plan, before = provider.plan_remove(IQN)
    assert before['iqn'] == IQN and plan.after is None
    assert plan.actions[:2] == [
        'remove LIO iSCSI target %s (its TPG, LUNs, ACLs and portals)' % IQN,
        'remove storage object fileio/%s (the file %s itself stays)' % (lio.so_name(IQN, 0), backing)]
    plan.execute()
    assert sorted(fake.nodes) == ['/core/fileio/theirs', '/iscsi']
    assert backing.read_bytes() == b'data'
    assert provider.read(IQN) is None
    plan, before = provider.plan_remove(IQN)
    assert not plan and before is None


def test_rbd_is_refused(provider, fake):
    rbd = Lun(0, DataRef('rbd', 'raw', SIZE, pool='volumes', image='volume-db01', cluster={'conf': '/etc/ceph/c'}))
    with pytest.raises(Unsupported) as err:
        provider.plan_ensure(spec(luns=[rbd]))
    assert 'rbd:volumes/volume-db01' in err.value.msg
    assert 'provider tgt' in err.value.msg and 'map the image' in err.value.msg
    assert fake.nodes == {}


def test_qcow2_and_duplicate_luns_are_refused(provider, fake):
    with pytest.raises(InvalidInput, match='raw data only'):
        provider.plan_ensure(spec(luns=[Lun(0, DataRef('file', 'qcow2', SIZE, path='/srv/x'))]))
    with pytest.raises(InvalidInput, match='unique'):
        provider.plan_ensure(spec(luns=[file_lun(0), file_lun(0, path='/srv/y')]))


def test_check_mode_plans_without_touching_rtslib(provider, fake):
    apply(provider, spec(initiators=[INI_A]))
    nodes = json.dumps(fake.nodes, sort_keys=True, default=str)
    calls = len(fake.calls)
    plan, _before = provider.plan_ensure(spec(initiators=[INI_B], chap=chap(), portals=['127.0.0.1:3260']))
    assert len(plan.actions) > 3
    plan, _before = provider.plan_remove(IQN)
    assert plan
    assert json.dumps(fake.nodes, sort_keys=True, default=str) == nodes
    assert len(fake.calls) == calls and len(fake.saved) == 1


def test_read_never_returns_a_password(provider, fake):
    apply(provider, spec(initiators=[INI_A], chap=chap(), mutual_chap=Chap('targetuser', 'Mutual-pass-789')))
    dumped = json.dumps(provider.read(IQN))
    assert PASSWORD not in dumped and 'Mutual-pass-789' not in dumped
    plan, before = provider.plan_ensure(spec(initiators=[INI_A], chap=chap(password='Another-pass-1')))
    text = json.dumps([before, plan.after, plan.actions])
    assert PASSWORD not in text and 'Mutual-pass-789' not in text and 'Another-pass-1' not in text


def test_configfs_missing_is_a_clear_error(provider, fake, monkeypatch, tmp_path):
    monkeypatch.setattr(lio, 'CONFIGFS_TARGET', str(tmp_path / 'absent'))
    fake.no_configfs = True
    for call in (lambda: provider.read(IQN), lambda: provider.plan_ensure(spec()), lambda: provider.plan_remove(IQN)):
        with pytest.raises(Unsupported) as err:
            call()
        msg = err.value.msg
        assert IQN in msg and 'Cannot mount configfs' in msg
        assert 'target_core_mod' in msg and 'configfs mounted' in msg and 'use provider tgt' in msg
    fake.no_configfs = False        # rtslib answers but the directory never appears
    with pytest.raises(Unsupported, match='absent'):
        provider.read(IQN)


def test_an_rtslib_error_names_the_target_cause_and_fix(provider, fake, monkeypatch):
    def refuse(*_args, **_kwargs):
        raise lio.rtslib_fb.RTSLibError('Could not create NetworkPortal in configFS')
    monkeypatch.setattr(lio.rtslib_fb, 'NetworkPortal', refuse)
    plan, _before = provider.plan_ensure(spec())
    with pytest.raises(StorageError) as err:
        plan.execute()
    msg = err.value.msg
    assert IQN in msg and 'add portal 0.0.0.0:3260' in msg and 'Could not create NetworkPortal' in msg
    assert 'run again' in msg
    assert err.value.details['actions_done'][:2] == ['create LIO iSCSI target %s' % IQN, 'create TPG 1 of target %s'
                                                     % IQN]
    assert fake.nodes == {'/iscsi': fake.nodes['/iscsi']}     # the new target was undone


def test_missing_rtslib_names_the_package(monkeypatch):
    monkeypatch.setattr(lio, 'rtslib_fb', None)
    monkeypatch.setattr(lio, 'RTSLIB_IMPORT_ERROR', ImportError("No module named 'rtslib_fb'"))
    with pytest.raises(MissingDependency, match='python3-rtslib-fb'):
        lio.LioProvider({})


CHECK_REAL = r'''
import inspect, json, sys
sys.path.insert(0, sys.argv[1])
import rtslib_fb
used, sigs, inst = json.loads(sys.argv[2])
missing = []
for cls, names in used.items():
    obj = getattr(rtslib_fb, cls, None)
    if obj is None:
        missing.append(cls)
        continue
    missing += ['%s.%s' % (cls, n) for n in names if not hasattr(obj, n)]
for name in ('RTSLibError', 'RTSLibNotInCFS', 'FabricModule'):
    if not hasattr(rtslib_fb, name):
        missing.append(name)
for dotted, params in sigs.items():
    cls, meth = dotted.split('.')
    real = list(inspect.signature(getattr(getattr(rtslib_fb, cls), meth)).parameters)
    if real != params:
        missing.append('%s%r != %r' % (dotted, real, params))
for cls, names in inst.items():
    source = inspect.getsource(getattr(rtslib_fb, cls).__mro__[1]) + inspect.getsource(getattr(rtslib_fb, cls))
    missing += ['%s.%s' % (cls, n) for n in names if 'self.%s = ' % n not in source]
if not issubclass(rtslib_fb.RTSLibNotInCFS, rtslib_fb.RTSLibError):
    missing.append('RTSLibNotInCFS is not an RTSLibError')
if rtslib_fb.FabricModule('iscsi').name != 'iscsi':
    missing.append('FabricModule(iscsi).name')
print(json.dumps(missing))
'''


def test_the_fake_matches_the_real_rtslib():
    """Every class, property, method and constructor signature the provider
    (and so the fake) uses exists in the real rtslib_fb."""
    if not os.path.isdir(REAL_RTSLIB) or not os.path.exists('/usr/bin/python3'):
        pytest.fail('python3-rtslib-fb is not installed for /usr/bin/python3 (bindep.txt, make install)',
                    pytrace=False)
    used = dict(fake_rtslib.USED)
    for cls, names in used.items():                       # the fake has them too
        assert all(hasattr(getattr(fake_rtslib, cls), n) for n in names), cls
    args = json.dumps([used, fake_rtslib.SIGNATURES, fake_rtslib.INSTANCE])
    out = subprocess.run(['/usr/bin/python3', '-c', CHECK_REAL, os.path.dirname(REAL_RTSLIB), args],
                         capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(out.stdout) == []


def test_the_provider_uses_only_checked_names():
    """Every rtslib_fb.<name> in lio.py is a name the cross-check covers."""
    with open(lio.__file__) as handle:
        source = handle.read()
    import re
    used = set(re.findall(r'rtslib_fb\.([A-Za-z]+)', source))
    assert used <= set(fake_rtslib.USED) | {'RTSLibError', 'RTSLibNotInCFS', 'FabricModule'}


def test_a_specific_portal_beside_another_targets_wildcard_is_a_clear_conflict(provider, fake):
    # measured on Linux 6.1 (tests/vm/playbooks/20_lio_attach.yml): "Could not create NetworkPortal in configFS"
    other = 'iqn.2026-11.org.blockyard:volume-other'
    apply(provider, TargetSpec(other, luns=[file_lun(0, path='/srv/volumes/volume-other')]))
    with pytest.raises(Conflict) as err:
        apply(provider, spec(portals=['127.0.0.1:3260']))
    assert 'other targets listen on port 3260 at 0.0.0.0:3260 (%s)' % other in err.value.msg
    assert '0.0.0.0:3260, what targetcli makes by default' in err.value.msg
    # the failed create is undone, and the shared wildcard works
    assert provider.read(IQN) is None
    apply(provider, spec(portals=['0.0.0.0:3260']))
    assert provider.read(IQN)['portals'] == ['0.0.0.0:3260']


def test_export_listens_on_the_wildcard_of_its_portal_with_lio():
    from ansible_collections.blockyard.storage.plugins.module_utils import exports
    assert exports._portals({'portal': '192.0.2.10:3260', 'target_provider': 'lio'}) == ['0.0.0.0:3260']
    assert exports._portals({'portal': '[2001:db8::1]:3261', 'target_provider': 'lio'}) == ['[::]:3261']
    assert exports._portals({'portal': '192.0.2.10:3260', 'target_provider': 'tgt'}) == ['192.0.2.10:3260']
    assert exports._portals({'portal': '192.0.2.10:3260'}) == ['192.0.2.10:3260']
