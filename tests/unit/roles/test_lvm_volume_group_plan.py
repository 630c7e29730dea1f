# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The planner of the lvm_volume_group role (roles/lvm_volume_group/files),
against fabricated host facts. The VM tier's molecule scenario runs it for real."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import importlib.util
import json
import os

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, '..', '..', '..', 'roles', 'lvm_volume_group', 'files', 'lvm_volume_group_plan.py')
spec = importlib.util.spec_from_file_location('lvm_volume_group_plan', SCRIPT)
lvg = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lvg)


def dev(given, path=None, pv_vg=None, pv=False, signatures=(), holders=(), partitions=(), mounted=False,
        exists=True, block=True):
    return {'given': given, 'path': path or given, 'exists': exists, 'block': block, 'pv': pv or pv_vg is not None,
            'pv_vg': pv_vg, 'signatures': [{'type': t, 'offset': '0x438'} for t in signatures],
            'holders': list(holders), 'partitions': list(partitions), 'mounted': mounted}


def facts(devices=(), vg=None, lvs=(), vg_pvs=()):
    return {'vg': vg, 'lvs': [dict(lv_name=n, vg_name='data', segtype=s, pool_lv='', lv_attr='', lv_size='1')
                              for n, s in lvs],
            'vg_pvs': list(vg_pvs), 'devices': list(devices)}


def request(**kw):
    base = {'name': 'data', 'devices': ['/dev/disk/by-id/d1'], 'state': 'present', 'thin_pool': '',
            'thin_pool_size': '', 'force': False, 'extend': True}
    base.update(kw)
    return base


BLANK = dev('/dev/disk/by-id/d1', '/dev/vdb')
VG = {'vg_name': 'data'}


def test_blank_device_new_group_with_pool():
    refusals, steps = lvg.plan(request(thin_pool='data-pool', thin_pool_size='90%FREE'), facts([BLANK]))
    assert refusals == []
    assert [s['argv'] for s in steps] == [['pvcreate', '/dev/vdb'], ['vgcreate', 'data', '/dev/vdb'],
                                          ['lvcreate', '--yes', '--type', 'thin-pool', '-l', '90%FREE',
                                           '-n', 'data-pool', 'data']]


def test_converged_group_plans_nothing():
    refusals, steps = lvg.plan(request(thin_pool='data-pool', thin_pool_size='1G'),
                               facts([dev('/dev/disk/by-id/d1', '/dev/vdb', pv_vg='data', signatures=['LVM2_member'])],
                                     vg=VG, lvs=[('data-pool', 'thin-pool')], vg_pvs=['/dev/vdb']))
    assert (refusals, steps) == ([], [])


@pytest.mark.parametrize('device, cause', [
    (dev('/dev/disk/by-id/d1', '/dev/vdb', signatures=['ext4']), 'signature ext4 at offset 0x438'),
    (dev('/dev/disk/by-id/d1', '/dev/vdb', signatures=['dos'], partitions=['vdb1']), 'partitions vdb1'),
    (dev('/dev/disk/by-id/d1', '/dev/vdb', pv_vg='other', signatures=['LVM2_member']),
     'physical volume of volume group other'),
])
def test_foreign_content_refused_unless_forced(device, cause):
    refusals, steps = lvg.plan(request(), facts([device]))
    assert steps == []
    assert len(refusals) == 1
    assert '/dev/disk/by-id/d1 (/dev/vdb)' in refusals[0]
    assert cause in refusals[0]
    assert 'lvm_volume_group_force: true' in refusals[0] and 'wipefs -a /dev/vdb' in refusals[0]
    refusals, steps = lvg.plan(request(force=True), facts([device]))
    assert refusals == []
    assert steps[0]['argv'] == ['pvcreate', '--force', '--force', '--yes', '/dev/vdb']


@pytest.mark.parametrize('device, cause', [
    (dev('/dev/d1', mounted=True, signatures=['ext4']), 'is mounted'),
    (dev('/dev/d1', pv_vg='other', holders=['dm-0']), 'in use by device-mapper devices dm-0'),
    (dev('/dev/d1', exists=False), 'does not exist'),
    (dev('/dev/d1', block=False), 'is not a block device'),
])
def test_never_taken_even_forced(device, cause):
    refusals, steps = lvg.plan(request(devices=['/dev/d1'], force=True), facts([device]))
    assert steps == [] and len(refusals) == 1 and cause in refusals[0]


def test_unused_pv_taken_and_group_extended():
    refusals, steps = lvg.plan(
        request(devices=['/dev/vdb', '/dev/vdc']),
        facts([dev('/dev/vdb', pv_vg='data'), dev('/dev/vdc', pv=True, pv_vg='')], vg=VG, vg_pvs=['/dev/vdb']))
    assert refusals == []
    assert [s['argv'] for s in steps] == [['vgextend', 'data', '/dev/vdc']]
    refusals, steps = lvg.plan(
        request(devices=['/dev/vdb', '/dev/vdc'], extend=False),
        facts([dev('/dev/vdb', pv_vg='data'), dev('/dev/vdc')], vg=VG, vg_pvs=['/dev/vdb']))
    assert steps == [] and 'lvm_volume_group_extend is false' in refusals[0]


def test_pool_name_taken_by_another_kind_of_volume():
    refusals, steps = lvg.plan(request(thin_pool='data-pool', thin_pool_size='1G'),
                               facts([dev('/dev/d1', pv_vg='data')], vg=VG, lvs=[('data-pool', 'linear')]))
    assert steps == [] and 'is a linear volume, not a thin pool' in refusals[0]


@pytest.mark.parametrize('kw, word', [
    ({'name': '-bad'}, 'lvm_volume_group_name'),
    ({'name': 'a/b'}, 'lvm_volume_group_name'),
    ({'devices': []}, 'lvm_volume_group_devices is empty'),
    ({'thin_pool_size': '10 G'}, 'lvm_volume_group_thin_pool_size'),
    ({'thin_pool': 'snapshot1', 'thin_pool_size': '1G'}, 'LVM reserves'),
    ({'thin_pool': 'x_tmeta', 'thin_pool_size': '1G'}, 'LVM reserves'),
])
def test_bad_input(kw, word):
    refusals, steps = lvg.plan(request(**kw), facts([BLANK]))
    assert steps == [] and word in refusals[0]


def test_absent_refused_while_volumes_exist():
    state = facts([], vg=VG, lvs=[('data-pool', 'thin-pool'), ('v1', 'thin')], vg_pvs=['/dev/vdb'])
    refusals, steps = lvg.plan(request(state='absent', devices=[]), state)
    assert steps == []
    assert 'still holds logical volumes v1' in refusals[0] and 'lvremove data/v1' in refusals[0]
    refusals, steps = lvg.plan(request(state='absent', devices=[], force=True), state)
    assert refusals == []
    assert [s['argv'] for s in steps] == [['vgremove', '--force', 'data'], ['pvremove', '/dev/vdb']]


def test_absent_with_only_a_pool_and_leftover_pvs():
    state = facts([dev('/dev/vdc', pv=True, pv_vg=''), dev('/dev/vdd', pv_vg='other'), dev('/dev/vde')],
                  vg=VG, lvs=[('data-pool', 'thin-pool')], vg_pvs=['/dev/vdb'])
    refusals, steps = lvg.plan(request(state='absent', devices=['/dev/vdc', '/dev/vdd', '/dev/vde']), state)
    assert refusals == []
    assert [s['argv'] for s in steps] == [['vgremove', '--force', 'data'], ['pvremove', '/dev/vdb', '/dev/vdc']]
    refusals, steps = lvg.plan(request(state='absent', devices=['/dev/vde']), facts([dev('/dev/vde')]))
    assert (refusals, steps) == ([], [])


def test_main_reports_bad_request(monkeypatch, capsys):
    monkeypatch.setenv('BLOCKYARD_LVG_REQUEST', json.dumps(request(name='')))
    assert lvg.main() == 0
    out = json.loads(capsys.readouterr().out)
    assert out['plan'] == [] and 'lvm_volume_group_name' in out['refusals'][0]


def test_main_reports_probe_failure(monkeypatch, capsys):
    def broken(argv):
        raise lvg.ProbeError('%s failed (rc 5): boom' % argv[0])
    monkeypatch.setattr(lvg, 'run', broken)
    monkeypatch.setenv('BLOCKYARD_LVG_REQUEST', json.dumps(request()))
    assert lvg.main() == 0
    out = json.loads(capsys.readouterr().out)
    assert out['failed'] and 'Cannot read the LVM state: pvs failed (rc 5): boom' in out['msg']


def test_gather_parses_reports(monkeypatch, tmp_path):
    reports = {
        'pvs': {'report': [{'pv': [{'pv_name': '/dev/vdb', 'vg_name': 'data', 'pv_uuid': 'u'}]}]},
        'vgs': {'report': [{'vg': [{'vg_name': 'data', 'pv_count': '1'}, {'vg_name': 'x', 'pv_count': '1'}]}]},
        'lvs': {'report': [{'lv': [{'lv_name': 'p', 'vg_name': 'data', 'segtype': 'thin-pool'},
                                   {'lv_name': 'q', 'vg_name': 'x', 'segtype': 'linear'}]}]},
    }
    monkeypatch.setattr(lvg, 'run', lambda argv: json.dumps(reports[argv[0]]))
    missing = str(tmp_path / 'nothing')
    got = lvg.gather({'name': 'data', 'devices': [missing]})
    assert got['vg'] == {'vg_name': 'data', 'pv_count': '1'}
    assert [lv['lv_name'] for lv in got['lvs']] == ['p']
    assert got['vg_pvs'] == ['/dev/vdb']
    assert got['devices'][0]['exists'] is False
