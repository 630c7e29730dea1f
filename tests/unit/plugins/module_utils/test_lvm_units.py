# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lvm backend without LVM: parsing of recorded `lvs`/`vgs` JSON
reports, LVM's name rules, the journal's validation, and the decisions of
the plan_* methods, with a fake runner that answers lvs/vgs from a model
of a volume group (and records every other command, which must not run)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json

import pytest

from ansible_collections.blockyard.storage.plugins.module_utils import runner
from ansible_collections.blockyard.storage.plugins.module_utils.backends.lvm import bookkeeping as bk
from ansible_collections.blockyard.storage.plugins.module_utils.backends.lvm import backend as lb
from ansible_collections.blockyard.storage.plugins.module_utils.errors import (
    Busy, Conflict, InvalidInput, NotFound, Unsupported)

MIB = 1024 * 1024

# recorded from LVM 2.03.16 (Debian 12): lvs --reportformat json --units b --nosuffix --binary -o <LV_FIELDS> vg0
RECORDED_LVS = '''  {
      "report": [
          {
              "lv": [
                  {"lv_name":"lvol0_pmspare", "lv_uuid":"x", "lv_attr":"ewi-------", "lv_size":"4194304",
                   "origin":"", "pool_lv":"", "lv_tags":"", "data_percent":"", "metadata_percent":"",
                   "segtype":"linear", "lv_active":"", "lv_device_open":"0", "lv_merging":"0",
                   "lv_time":"2026-12-03 17:00:00 +0000"},
                  {"lv_name":"[vg0-pool_tdata]", "lv_uuid":"y", "lv_attr":"Twi-ao----", "lv_size":"33554432",
                   "origin":"", "pool_lv":"", "lv_tags":"", "data_percent":"", "metadata_percent":"",
                   "segtype":"linear", "lv_active":"active", "lv_device_open":"1", "lv_merging":"0",
                   "lv_time":"2026-12-03 17:00:00 +0000"},
                  {"lv_name":"vg0-pool", "lv_uuid":"p1", "lv_attr":"twi-aotz--", "lv_size":"33554432",
                   "origin":"", "pool_lv":"", "lv_tags":"", "data_percent":"12.50", "metadata_percent":"10.94",
                   "segtype":"thin-pool", "lv_active":"active", "lv_device_open":"1", "lv_merging":"0",
                   "lv_time":"2026-12-03 17:00:00 +0000"},
                  {"lv_name":"volume-a", "lv_uuid":"a1", "lv_attr":"owi-a-s---", "lv_size":"4194304",
                   "origin":"", "pool_lv":"", "lv_tags":"", "data_percent":"", "metadata_percent":"",
                   "segtype":"linear", "lv_active":"active", "lv_device_open":"0", "lv_merging":"0",
                   "lv_time":"2026-12-03 17:01:00 +0000"},
                  {"lv_name":"volsnap-a.s2", "lv_uuid":"a3", "lv_attr":"swi-a-s---", "lv_size":"12582912",
                   "origin":"volume-a", "pool_lv":"", "lv_tags":"blockyard-snap-4194304-200,backup",
                   "data_percent":"0.00", "metadata_percent":"", "segtype":"linear", "lv_active":"active",
                   "lv_device_open":"0", "lv_merging":"0", "lv_time":"2026-12-03 17:02:00 +0000"},
                  {"lv_name":"volsnap-a.s1", "lv_uuid":"a2", "lv_attr":"swi-a-s---", "lv_size":"12582912",
                   "origin":"volume-a", "pool_lv":"", "lv_tags":"blockyard-snap-4194304-100",
                   "data_percent":"3.10", "metadata_percent":"", "segtype":"linear", "lv_active":"active",
                   "lv_device_open":"0", "lv_merging":"0", "lv_time":"2026-12-03 17:02:00 +0000"},
                  {"lv_name":"volume-t", "lv_uuid":"t1", "lv_attr":"Vwi-a-tz--", "lv_size":"8388608",
                   "origin":"", "pool_lv":"vg0-pool", "lv_tags":"", "data_percent":"50.00",
                   "metadata_percent":"", "segtype":"thin", "lv_active":"active", "lv_device_open":"1",
                   "lv_merging":"0", "lv_time":"2026-12-03 17:03:00 +0000"},
                  {"lv_name":"volclone-t", "lv_uuid":"t2", "lv_attr":"Vwi-a-tz-k", "lv_size":"8388608",
                   "origin":"volume-t", "pool_lv":"vg0-pool", "lv_tags":"", "data_percent":"50.00",
                   "metadata_percent":"", "segtype":"thin", "lv_active":"active", "lv_device_open":"0",
                   "lv_merging":"0", "lv_time":"2026-12-03 17:04:00 +0000"},
                  {"lv_name":"root", "lv_uuid":"r", "lv_attr":"-wi-ao----", "lv_size":"1073741824",
                   "origin":"", "pool_lv":"", "lv_tags":"", "data_percent":"", "metadata_percent":"",
                   "segtype":"linear", "lv_active":"active", "lv_device_open":"1", "lv_merging":"0",
                   "lv_time":"2026-12-01 10:00:00 +0000"},
                  {"lv_name":"volume-bad.name", "lv_uuid":"q", "lv_attr":"-wi-a-----", "lv_size":"4194304",
                   "origin":"", "pool_lv":"", "lv_tags":"", "data_percent":"", "metadata_percent":"",
                   "segtype":"linear", "lv_active":"active", "lv_device_open":"0", "lv_merging":"0",
                   "lv_time":"2026-12-01 10:00:00 +0000"}
              ]
          }
      ]
  }
'''
RECORDED_VGS = '''  {
      "report": [
          {
              "vg": [
                  {"vg_name":"vg0", "vg_uuid":"AbCd12-ef34-GH56-ij78-KL90-mn12-OP3456", "vg_size":"268435456",
                   "vg_free":"125829120", "vg_extent_size":"4194304", "vg_attr":"wz--n-"}
              ]
          }
      ]
  }
'''


def lv_row(name, size, attr='-wi-a-----', origin='', pool='', tags='', data='', meta='', segtype='linear',
           when='2026-12-03 17:00:00 +0000'):
    return {'lv_name': name, 'lv_uuid': 'u-' + name, 'lv_attr': attr, 'lv_size': str(size), 'origin': origin,
            'pool_lv': pool, 'lv_tags': tags, 'data_percent': data, 'metadata_percent': meta, 'segtype': segtype,
            'lv_active': 'active' if attr[4:5] == 'a' else '', 'lv_device_open': '1' if attr[5:6] == 'o' else '0',
            'lv_merging': '0', 'lv_time': when}


class FakeLvm(object):
    """Answers vgs and lvs from `rows`; records every other command."""

    def __init__(self, rows, vg_missing=False, free=128 * MIB):
        self.rows = rows
        self.vg_missing = vg_missing
        self.free = free
        self.calls = []

    def run(self, cmd, **kwargs):
        if cmd[0] == 'vgs':
            if self.vg_missing:
                return runner.Result(cmd, 5, '', '  Volume group "vg0" not found\n  Cannot process volume group vg0\n')
            data = {'report': [{'vg': [{'vg_name': 'vg0', 'vg_uuid': 'Uuid-1', 'vg_size': str(256 * MIB),
                                        'vg_free': str(self.free), 'vg_extent_size': str(4 * MIB),
                                        'vg_attr': 'wz--n-'}]}]}
            return runner.Result(cmd, 0, json.dumps(data), '')
        if cmd[0] == 'lvs':
            return runner.Result(cmd, 0, json.dumps({'report': [{'lv': self.rows}]}), '')
        self.calls.append(cmd)
        return runner.Result(cmd, 0, '', '')


def params(**kwargs):
    base = dict(backend='lvm', vg='vg0', lvm_type='thick', thin_pool=None, volume_clear='none', volume_clear_size=0,
                pool='rbd')
    base.update(kwargs)
    return base


def backend_with(rows, tmp_path, **kwargs):
    fake = FakeLvm(rows)
    with runner.use(fake):
        backend = lb.LvmBackend.locations(params(**kwargs))[0][0]
    backend.files = bk.HostFiles('vg0', backend.vg_uuid, str(tmp_path / 'state'), str(tmp_path / 'lock'))
    return backend, fake


THICK_WITH_SNAPS = [
    lv_row('volume-a', 4 * MIB, attr='owi-a-s---'),
    lv_row('volsnap-a.s1', 12 * MIB, attr='swi-a-s---', origin='volume-a', tags='blockyard-snap-4194304-100',
           data='2.00'),
    lv_row('volsnap-a.s2', 12 * MIB, attr='swi-a-s---', origin='volume-a', tags='blockyard-snap-4194304-200',
           data='0.00'),
]


# ------------------------------------------------------------------ parsing
def test_parse_recorded_lvs():
    lvs = bk.parse_lvs(RECORDED_LVS)
    names = [lv.name for lv in lvs]
    assert '[vg0-pool_tdata]' not in names and 'lvol0_pmspare' in names
    by = dict((lv.name, lv) for lv in lvs)
    pool = by['vg0-pool']
    assert pool.thin_pool and pool.data_percent == 12.5 and pool.metadata_percent == 10.94 and pool.open
    assert by['volume-a'].size == 4 * MIB and not by['volume-a'].thin and by['volume-a'].active
    assert by['volsnap-a.s1'].thick_snapshot and by['volsnap-a.s1'].origin == 'volume-a'
    assert by['volsnap-a.s2'].tags == ['blockyard-snap-4194304-200', 'backup']
    assert by['volsnap-a.s2'].snap_record() == (4 * MIB, 200)
    assert by['volume-t'].thin and by['volume-t'].pool == 'vg0-pool' and by['volume-t'].open
    assert by['volume-a'].data_percent is None


def test_contents_classifies_only_our_names():
    contents = bk.Contents(bk.parse_lvs(RECORDED_LVS))
    assert sorted(contents.volumes) == ['a', 't']
    assert sorted(contents.others) == ['lvol0_pmspare', 'root', 'vg0-pool', 'volume-bad.name']
    assert [s for s, _l in contents.snapshots_of('a')] == ['s1', 's2']   # by our tag's time, not lv_time
    assert contents.clones['t'].name == 'volclone-t'


def test_parse_recorded_vgs():
    (vg,) = bk.parse_vgs(RECORDED_VGS)
    assert vg == {'name': 'vg0', 'uuid': 'AbCd12-ef34-GH56-ij78-KL90-mn12-OP3456', 'size': 256 * MIB,
                  'free': 120 * MIB, 'extent_size': 4 * MIB, 'attr': 'wz--n-'}


@pytest.mark.parametrize('text', ['', 'not json', '{"report": 3}', '{"report": [{"lv": [1]}]}',
                                  '{"report": [{"lv": [{"lv_name": "x", "lv_size": "4.00m"}]}]}'])
def test_damaged_reports_are_errors(text):
    with pytest.raises(bk.LvmReportError):
        bk.parse_lvs(text)


@pytest.mark.parametrize('tags', ['', 'blockyard-snap-0-1', 'blockyard-snap-12-1,blockyard-snap-12-2',
                                  'blockyard-snap-1x-2', 'blockyard-snap-12-'])
def test_snapshot_tag_strict(tags):
    (lv,) = bk.parse_lvs(json.dumps({'report': [{'lv': [lv_row('volsnap-a.s', MIB, tags=tags)]}]}))
    assert lv.snap_record() is None


# ------------------------------------------------------------------ names
@pytest.mark.parametrize('name,why', [
    ('', 'empty'), ('-vg', 'not a valid'), ('.', 'not a valid'), ('..', 'not a valid'), ('a/b', 'not a valid'),
    ('a b', 'not a valid'), ('x' * 128, 'characters long'), ('snapshot1', 'reserves'), ('pvmove0', 'reserves'),
    ('p_tdata', 'internal'), ('a_rimage_0', 'internal'), ('ä', 'not a valid')])
def test_lvm_name_rules(name, why):
    with pytest.raises(InvalidInput) as caught:
        bk.check_lvm_name(name, 'thin pool', 'thin_pool')
    assert why in caught.value.msg and 'thin_pool' in caught.value.msg


def test_vg_names_may_start_with_snapshot_but_not_dash():
    assert bk.check_lvm_name('snapshots', 'volume group', 'vg', lv=False) == 'snapshots'
    with pytest.raises(InvalidInput):
        bk.check_lvm_name('-x', 'volume group', 'vg', lv=False)


def test_dm_name_and_length():
    assert bk.dm_name('my-vg', 'volsnap-a-b.s', '-cow') == 'my--vg-volsnap--a--b.s-cow'
    bk.check_lv_name_fits('vg', 'volume-' + 'a' * 100, 'volume name')
    with pytest.raises(InvalidInput) as caught:
        bk.check_lv_name_fits('vg', 'volume-' + 'a-' * 50, 'volume name')
    assert 'device-mapper name' in caught.value.msg and 'counts twice' in caught.value.msg
    with pytest.raises(InvalidInput) as caught:
        bk.check_lv_name_fits('vg', 'volume-x_tmeta', 'volume name')
    assert '_tmeta' in caught.value.msg


def test_backend_validates_names_with_its_vg(tmp_path):
    backend, _f = backend_with([], tmp_path)
    assert backend.validate_name('ok-1') == 'ok-1'
    for bad in ('a.b', 'x_cdata', 'y' * 120, 'snap/x'):
        with pytest.raises(InvalidInput):
            backend.validate_name(bad)
    with pytest.raises(InvalidInput):
        backend.validate_snapshot_name('s_tdata')


# ------------------------------------------------------------------ options and the VG
@pytest.mark.parametrize('extra,words', [
    (dict(vg=None), ['needs vg']), (dict(vg='-bad'), ['vg']), (dict(thin_pool='snapshotpool'), ['thin_pool']),
    (dict(lvm_type='fat'), ['lvm_type']), (dict(volume_clear='shred'), ['volume_clear']),
    (dict(volume_clear_size=-1), ['volume_clear_size']), (dict(volume_dir='/srv'), ['volume_dir', 'file']),
    (dict(mode='0600'), ['mode']), (dict(namespace='n'), ['namespace'])])
def test_bad_options(extra, words):
    with runner.use(FakeLvm([])):
        with pytest.raises(InvalidInput) as caught:
            lb.LvmBackend.locations(params(**extra))
    for word in words:
        assert word in caught.value.msg


def test_missing_vg_names_vgs_and_the_role():
    fake = FakeLvm([], vg_missing=True)
    with runner.use(fake):
        with pytest.raises(NotFound) as caught:
            lb.LvmBackend.locations(params())
    msg = caught.value.msg
    assert 'vg0' in msg and 'vgs' in msg and 'lvm_volume_group' in msg and 'vgcreate' in msg


def test_default_thin_pool_and_provisioning(tmp_path):
    backend, _f = backend_with([], tmp_path, lvm_type='thin')
    assert backend.pool == 'vg0-pool' and backend.default_provisioning == 'thin'
    backend, _f = backend_with([], tmp_path, thin_pool='mypool')
    assert backend.pool == 'mypool' and backend.default_provisioning == 'thick'


# ------------------------------------------------------------------ plans (nothing runs but lvs/vgs)
def test_delete_with_snapshots_is_refused_without_force(tmp_path):
    backend, fake = backend_with(THICK_WITH_SNAPS, tmp_path)
    with runner.use(fake):
        with pytest.raises(Conflict) as caught:
            backend.plan_delete('a')
        assert 's1, s2' in caught.value.msg and 'force' in caught.value.msg
        plan, before = backend.plan_delete('a', force=True)
    assert before.name == 'a' and [s.name for s in before.snapshots] == ['s1', 's2']
    assert plan.actions == ['delete snapshot s1 of volume a (vg0/volsnap-a.s1)',
                            'delete snapshot s2 of volume a (vg0/volsnap-a.s2)', 'remove LV vg0/volume-a']
    assert fake.calls == []


def test_delete_with_clear_says_so(tmp_path):
    backend, fake = backend_with(THICK_WITH_SNAPS, tmp_path, volume_clear='zero')
    with runner.use(fake):
        plan, _b = backend.plan_delete('a', force=True)
    assert all(a.startswith('zero') for a in plan.actions), plan.actions


def test_delete_refuses_a_foreign_snapshot(tmp_path):
    rows = THICK_WITH_SNAPS + [lv_row('backup', 8 * MIB, attr='swi-a-s---', origin='volume-a')]
    backend, fake = backend_with(rows, tmp_path)
    with runner.use(fake):
        with pytest.raises(Conflict) as caught:
            backend.plan_delete('a', force=True)
    assert 'backup' in caught.value.msg


def test_delete_of_an_open_volume_is_busy(tmp_path):
    backend, fake = backend_with([lv_row('volume-o', 4 * MIB, attr='-wi-ao----')], tmp_path)
    with runner.use(fake):
        with pytest.raises(Busy):
            backend.plan_delete('o')


def test_revert_thick_unchanged_when_cow_is_empty(tmp_path):
    backend, fake = backend_with(THICK_WITH_SNAPS, tmp_path)
    with runner.use(fake):
        plan, _b = backend.plan_revert('a', 's2')
        assert not plan and plan.actions == []
        with pytest.raises(Conflict) as caught:
            backend.plan_revert('a', 's1')
        assert 's1' in caught.value.msg and 's2' in caught.value.msg
        with pytest.raises(NotFound):
            backend.plan_revert('a', 'nope')
    rows = [dict(r) for r in THICK_WITH_SNAPS]
    rows[2]['data_percent'] = '0.01'
    backend, fake = backend_with(rows, tmp_path)
    with runner.use(fake):
        plan, _b = backend.plan_revert('a', 's2')
    assert plan.actions == ['merge snapshot s2 into volume a (lvconvert --merge vg0/volsnap-a.s2), then make '
                            'snapshot s2 again']
    assert fake.calls == []


def test_revert_needs_the_capability(tmp_path, monkeypatch):
    backend, fake = backend_with(THICK_WITH_SNAPS, tmp_path)
    monkeypatch.setattr(lb.LvmBackend, 'capabilities', frozenset())
    with runner.use(fake):
        with pytest.raises(Unsupported):
            backend.plan_revert('a', 's2')


def test_extend_rounds_to_extents_and_refuses_shrink(tmp_path):
    backend, fake = backend_with([lv_row('volume-v', 8 * MIB)], tmp_path)
    with runner.use(fake):
        volume = backend.load('v')
        assert volume.provisioning == 'thick' and volume.allocated == 8 * MIB
        plan, _b = backend.plan_update(volume, size=6 * MIB)        # rounds up to 8M: nothing to do
        assert not plan
        with pytest.raises(Conflict) as caught:
            backend.plan_update(volume, size=4 * MIB)
        assert 'shrink' in caught.value.msg
        plan, _b = backend.plan_update(volume, size=9 * MIB)
        assert plan.actions == ['extend volume v from 8M to 12M (lvextend vg0/volume-v), and zero the new range']
        assert plan.after.size == 12 * MIB
        with pytest.raises(Conflict):
            backend.plan_update(volume, fmt='qcow2')
    assert fake.calls == []


def test_extend_thick_origin_with_snapshots_goes_inactive(tmp_path):
    backend, fake = backend_with(THICK_WITH_SNAPS, tmp_path)
    with runner.use(fake):
        plan, _b = backend.plan_update(backend.load('a'), size=8 * MIB)
    assert 'inactive' in plan.actions[0] and 's1, s2' in plan.actions[0]


def test_thin_create_needs_the_pool(tmp_path):
    backend, fake = backend_with([], tmp_path, lvm_type='thin')
    with runner.use(fake):
        with pytest.raises(NotFound) as caught:
            backend.plan_create('n', 'raw', 4 * MIB, 'thin')
    msg = caught.value.msg
    assert 'vg0-pool' in msg and 'thin_pool' in msg and 'lvcreate' in msg


@pytest.mark.parametrize('data,meta,word', [('100.00', '5.00', 'data'), ('40.00', '100.00', 'metadata')])
def test_full_thin_pool_is_refused(tmp_path, data, meta, word):
    rows = [lv_row('vg0-pool', 32 * MIB, attr='twi-aotz--', data=data, meta=meta, segtype='thin-pool'),
            lv_row('volume-t', 8 * MIB, attr='Vwi-a-tz--', pool='vg0-pool', data='100.00', segtype='thin')]
    backend, fake = backend_with(rows, tmp_path, lvm_type='thin')
    with runner.use(fake):
        for call in (lambda: backend.plan_create('n', 'raw', 4 * MIB, 'thin'),
                     lambda: backend.plan_snapshot_create('t', 's')):
            with pytest.raises(Conflict) as caught:
                call()
            assert 'full' in caught.value.msg and word in caught.value.msg and 'lvextend' in caught.value.msg
        # a thick volume does not need the pool
        plan, _b = backend.plan_create('k', 'raw', 4 * MIB, 'thick')
    assert plan.actions == ['create thick LV vg0/volume-k of 4M',
                            'zero vg0/volume-k (its extents may hold data of a deleted volume)']


def test_thick_create_needs_free_extents(tmp_path):
    backend, fake = backend_with([], tmp_path)
    fake.free = 4 * MIB
    backend._cache.clear()      # the VG as vgs reports it now
    with runner.use(fake):
        with pytest.raises(Conflict) as caught:
            backend.plan_create('n', 'raw', 8 * MIB, 'thick')
    assert 'vgextend' in caught.value.msg


def test_qcow2_is_unsupported(tmp_path):
    backend, fake = backend_with([], tmp_path)
    with runner.use(fake):
        with pytest.raises(Unsupported):
            backend.plan_create('n', 'qcow2', 4 * MIB, 'thick')


def test_snapshot_create_plans(tmp_path):
    backend, fake = backend_with(THICK_WITH_SNAPS, tmp_path)
    with runner.use(fake):
        plan, before = backend.plan_snapshot_create('a', 's3')
        assert plan.actions == ['create thick snapshot s3 of volume a (vg0/volsnap-a.s3)']
        assert plan.after.snapshot_names == ['s1', 's2', 's3']
        plan, _b = backend.plan_snapshot_create('a', 's1')
        assert not plan
        with pytest.raises(NotFound):
            backend.plan_snapshot_create('nothere', 's1')
        plan, _b = backend.plan_snapshot_delete('a', 's1')
        assert plan.after.snapshot_names == ['s2']
        plan, _b = backend.plan_snapshot_delete('a', 'gone')
        assert not plan
    assert fake.calls == []


def test_capacity_thin_and_thick(tmp_path):
    rows = [lv_row('vg0-pool', 100 * MIB, attr='twi-aotz--', data='25.00', meta='3.00', segtype='thin-pool'),
            lv_row('volume-t', 8 * MIB, attr='Vwi-a-tz--', pool='vg0-pool', data='50.00', segtype='thin'),
            lv_row('volume-k', 4 * MIB)]
    backend, fake = backend_with(rows, tmp_path, lvm_type='thin')
    with runner.use(fake):
        cap = backend.capacity()
        assert (cap.total, cap.free, cap.provisioned) == (100 * MIB, 75 * MIB, 12 * MIB)
        assert cap.details['metadata_percent'] == 3.0
        assert backend.load('t').allocated == 4 * MIB
    backend, fake = backend_with(rows, tmp_path)
    with runner.use(fake):
        cap = backend.capacity()
    assert (cap.total, cap.free) == (256 * MIB, 128 * MIB)


def test_data_refs_are_block_devices(tmp_path):
    backend, fake = backend_with(THICK_WITH_SNAPS, tmp_path)
    with runner.use(fake):
        volume = backend.load('a')
    ref = backend.data_ref(volume)
    assert (ref.kind, ref.format, ref.path, ref.size) == ('block', 'raw', '/dev/vg0/volume-a', 4 * MIB)
    ref = backend.data_ref(volume, 's1')
    assert (ref.kind, ref.path, ref.size) == ('block', '/dev/vg0/volsnap-a.s1', 4 * MIB)


# ------------------------------------------------------------------ journal
@pytest.mark.parametrize('journal', [
    [], {'op': 'format'}, {'op': 'create', 'x': 1}, {'op': 'extend', 'from': 8, 'size': 4},
    {'op': 'extend', 'from': True, 'size': 4}, {'op': 'snapshot_delete', 'snapshot': '../x'},
    {'op': 'revert', 'snapshot': 's', 'size': 1, 'time': -1}, {'op': 'snapshot_delete'}])
def test_invalid_journals(tmp_path, journal):
    files = bk.HostFiles('vg0', 'U-1', str(tmp_path / 's'), str(tmp_path / 'l'))
    assert bk.journal_problem(journal)
    import os
    os.makedirs(os.path.dirname(files.journal_path('v')))
    with open(files.journal_path('v'), 'w') as handle:
        json.dump(journal, handle)
    with pytest.raises(bk.InvalidJournal if isinstance(journal, dict) else Exception):
        files.read('v')


def test_journal_round_trip_and_mode(tmp_path):
    import os
    files = bk.HostFiles('vg0', 'U-1', str(tmp_path / 's'), str(tmp_path / 'l'))
    assert files.read('v') is None
    files.write('v', {'op': 'revert', 'snapshot': 's1', 'size': 4096, 'time': 12})
    assert files.read('v') == {'op': 'revert', 'snapshot': 's1', 'size': 4096, 'time': 12}
    assert os.stat(files.journal_path('v')).st_mode & 0o777 == 0o600
    assert files.journal_names() == ['v']
    files.clear('v')
    assert files.read('v') is None


def test_journal_refuses_a_link(tmp_path):
    import os
    files = bk.HostFiles('vg0', 'U-1', str(tmp_path / 's'), str(tmp_path / 'l'))
    os.makedirs(files.state_dir)
    os.symlink('/etc/passwd', files.journal_path('v'))
    with pytest.raises(Exception) as caught:
        files.read('v')
    assert 'link' in str(caught.value)


def test_state_dir_through_a_link_is_refused(tmp_path):
    import os
    os.symlink(str(tmp_path), str(tmp_path / 'l'))
    files = bk.HostFiles('vg0', 'U-1', str(tmp_path / 's'), str(tmp_path / 'l'))
    with pytest.raises(Exception) as caught:
        files.ensure_lock_dir()
    assert 'symbolic link' in str(caught.value)


def test_bad_vg_uuid():
    with pytest.raises(Exception):
        bk.HostFiles('vg0', '../../etc')
