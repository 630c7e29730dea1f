# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""AoE exports (vblade under a systemd unit): the unit as the record,
deterministic allocation, idempotent plans, bad input. systemctl is a fake
runner; the real vblade and aoe driver run in tests/vm/playbooks/25_aoe.yml."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

import pytest

from ansible_collections.blockyard.storage.plugins.module_utils import aoe, connection_info as ci, runner
from ansible_collections.blockyard.storage.plugins.module_utils.errors import (
    Conflict, InvalidInput, MissingDependency, StorageError, Unsupported)
from ansible_collections.blockyard.storage.plugins.module_utils.model import DataRef


class FakeSystemd:
    def __init__(self):
        self.calls = []
        self.active = set()

    def run(self, cmd, **kwargs):
        self.calls.append(cmd)
        if cmd[:2] == ['systemctl', 'enable']:
            self.active.add(cmd[-1])
        elif cmd[:2] == ['systemctl', 'disable']:
            self.active.discard(cmd[-1])
        elif cmd[:2] == ['systemctl', 'show']:
            up = cmd[-1] in self.active
            props = 'ActiveState=%s\nMainPID=%d\n' % ('active' if up else 'inactive', 42 if up else 0)
            return runner.Result(cmd, 0, props, '')
        return runner.Result(cmd, 0, '', '')


@pytest.fixture
def env(tmp_path, monkeypatch):
    units = tmp_path / 'units'
    units.mkdir()
    net = tmp_path / 'net'
    (net / 'aoe0').mkdir(parents=True)
    run_dir = tmp_path / 'systemd'
    run_dir.mkdir()
    vblade = tmp_path / 'vblade'
    vblade.write_text('#!/bin/sh\n')
    vblade.chmod(0o755)
    monkeypatch.setattr(aoe, 'UNIT_DIR', str(units))
    monkeypatch.setattr(aoe, 'NET_DIR', str(net))
    monkeypatch.setattr(aoe, 'SYSTEMD_RUN_DIR', str(run_dir))
    monkeypatch.setattr(aoe, 'VBLADE_PATHS', (str(vblade),))
    monkeypatch.setattr(aoe, 'SETTLE_SECONDS', 0)
    fake = FakeSystemd()
    with runner.use(fake):
        yield tmp_path, fake


def _ref(tmp_path, name, fmt='raw', kind='file'):
    path = tmp_path / ('volume-%s' % name)
    path.write_bytes(b'\0' * 4096)
    return DataRef(kind, fmt, 4096, path=str(path))


def _export(tmp_path, name, **kwargs):
    exp = aoe.AoeExport(name, _ref(tmp_path, name))
    plan, before = exp.plan_present('aoe0', **kwargs)
    plan.execute()
    return exp, plan, before


def test_connection_info_has_os_bricks_keys():
    info = ci.aoe(3, 7)
    assert info == {'driver_volume_type': 'aoe', 'data': {'target_shelf': 3, 'target_lun': 7}}
    assert tuple(sorted(info['data'])) == tuple(sorted(ci.AOE_KEYS))
    for bad in ((-1, 0), (0, 255), (65535, 0), (True, 0), ('1', 0)):
        with pytest.raises(InvalidInput):
            ci.aoe(*bad)


def test_export_writes_a_unit_and_a_rerun_changes_nothing(env):
    tmp_path, fake = env
    exp, plan, before = _export(tmp_path, 'v1')
    assert before is None and plan.after['shelf'] == 0 and plan.after['slot'] == 0
    unit = tmp_path / 'units' / 'blockyard-vblade-0-0.service'
    text = unit.read_text()
    assert 'ExecStart="%s" "0" "0" "aoe0" "%s"' % (aoe.VBLADE_PATHS[0], exp.ref.path) in text
    assert oct(os.stat(str(unit)).st_mode & 0o777) == '0o644'
    assert ['systemctl', 'enable', '--now', 'blockyard-vblade-0-0.service'] in fake.calls
    again, before = exp.plan_present('aoe0')
    assert not again and before['unit'] == 'blockyard-vblade-0-0.service'


def test_allocation_is_the_lowest_free_address_and_kept(env):
    tmp_path, _fake = env
    _export(tmp_path, 'a')
    _export(tmp_path, 'b')
    _export(tmp_path, 'c', shelf=2)
    records = aoe.read_records()
    assert sorted((r['volume'], k) for k, r in records.items()) == [('a', (0, 0)), ('b', (0, 1)), ('c', (2, 0))]
    exp = aoe.AoeExport('a', DataRef('file', 'raw', 4096, path=str(tmp_path / 'volume-a')))
    exp.plan_absent()[0].execute()
    # a's address is free again: the next new volume takes it, b keeps its own
    _export(tmp_path, 'd')
    records = aoe.read_records()
    assert records[(0, 0)]['volume'] == 'd' and records[(0, 1)]['volume'] == 'b'


def test_a_taken_address_is_refused_naming_its_volume(env):
    tmp_path, _fake = env
    _export(tmp_path, 'a', shelf=1, slot=5)
    with pytest.raises(Conflict) as err:
        _export(tmp_path, 'b', shelf=1, slot=5)
    assert 'e1.5 is taken by volume a' in err.value.msg


def test_moving_an_export_removes_the_old_unit(env):
    tmp_path, fake = env
    exp, _plan, _b = _export(tmp_path, 'a')
    plan, before = exp.plan_present('aoe0', shelf=4, slot=2)
    assert before['unit'] == 'blockyard-vblade-0-0.service'
    plan.execute()
    assert sorted(aoe.read_records()) == [(4, 2)]
    assert ['systemctl', 'disable', '--now', 'blockyard-vblade-0-0.service'] in fake.calls


def test_a_stopped_unit_is_started_again(env):
    tmp_path, fake = env
    exp, _plan, _b = _export(tmp_path, 'a')
    fake.active.clear()
    plan, _before = exp.plan_present('aoe0')
    assert plan.actions == ['start and enable blockyard-vblade-0-0.service (it was not running)']


def test_absent_removes_the_unit_and_is_idempotent(env):
    tmp_path, fake = env
    exp, _plan, _b = _export(tmp_path, 'a')
    plan, before = exp.plan_absent()
    assert before['slot'] == 0 and len(plan.actions) == 3
    plan.execute()
    assert not os.listdir(str(tmp_path / 'units'))
    assert not exp.plan_absent()[0]


def test_check_mode_plan_writes_nothing(env):
    tmp_path, fake = env
    exp = aoe.AoeExport('a', _ref(tmp_path, 'a'))
    plan, _before = exp.plan_present('aoe0')
    assert plan.actions[0].startswith('write systemd unit')
    assert not os.listdir(str(tmp_path / 'units')) and fake.calls == []


def test_a_unit_that_fails_to_stay_up_is_an_error_and_undone(env, monkeypatch):
    tmp_path, fake = env
    monkeypatch.setattr(fake, 'active', type('Never', (set,), {'add': lambda self, x: None})())
    exp = aoe.AoeExport('a', _ref(tmp_path, 'a'))
    plan, _before = exp.plan_present('aoe0')
    with pytest.raises(StorageError) as err:
        plan.execute()
    assert 'does not stay up' in err.value.msg
    assert not os.listdir(str(tmp_path / 'units'))


@pytest.mark.parametrize('fmt,kind', [('qcow2', 'file'), ('raw', 'rbd')])
def test_qcow2_and_rbd_are_refused(env, fmt, kind):
    tmp_path, _fake = env
    ref = _ref(tmp_path, 'q', fmt=fmt, kind='file')
    ref.kind = kind
    with pytest.raises(Unsupported) as err:
        aoe.AoeExport('q', ref).plan_present('aoe0')
    assert 'Volume q cannot be exported over AoE' in err.value.msg and 'raw copy' in err.value.msg


def test_missing_vblade_names_the_package(env, monkeypatch):
    tmp_path, _fake = env
    monkeypatch.setattr(aoe, 'VBLADE_PATHS', ())
    monkeypatch.setattr(aoe.shutil, 'which', lambda name: None)
    with pytest.raises(MissingDependency) as err:
        aoe.AoeExport('a', _ref(tmp_path, 'a')).plan_present('aoe0')
    assert 'install the vblade package' in err.value.msg


def test_bad_interface_shelf_and_slot(env):
    tmp_path, _fake = env
    exp = aoe.AoeExport('a', _ref(tmp_path, 'a'))
    for args, text in (((None,), 'give aoe_interface'), (('eth9',), 'not a network interface'),
                       (('../x',), 'not a network interface'), (('aoe0', 65535), 'aoe_shelf 65535'),
                       (('aoe0', 0, 255), 'aoe_slot 255')):
        with pytest.raises(InvalidInput) as err:
            exp.plan_present(*args)
        assert text in err.value.msg


def test_a_foreign_unit_of_our_name_is_refused(env):
    tmp_path, _fake = env
    (tmp_path / 'units' / 'blockyard-vblade-0-0.service').write_text('[Service]\nExecStart=/bin/true\n')
    with pytest.raises(StorageError) as err:
        aoe.read_records()
    assert 'not an AoE export this collection wrote' in err.value.msg


def test_unit_quoting():
    text = aoe.unit_text({'volume': 'v', 'path': '/srv/a "b"/50%$x', 'interface': 'eth0', 'shelf': 1, 'slot': 2},
                         '/usr/sbin/vblade')
    assert 'ExecStart="/usr/sbin/vblade" "1" "2" "eth0" "/srv/a \\"b\\"/50%%$$x"' in text
