# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The volume_info module's entry point: argument spec, and the result's
shape for a listing and for one volume by name (check mode the same), through
the real main() against a tmp directory. The documented RETURN keys exist."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

import pytest

from module_harness import module_docs, returned_keys

MIB = 1024 * 1024


@pytest.mark.parametrize('given, words', [
    ({'share': 'h:/e'}, ['mutually exclusive', 'volume_dir', 'share']),
    ({'shares': ['h:/e']}, ['mutually exclusive', 'volume_dir', 'shares']),
    ({'format': 'vmdk'}, ['format', 'raw, qcow2']),
    ({'state': 'present'}, ['Unsupported parameters', 'state']),
])
def test_invalid_arguments(run_module, vdir, given, words):
    run = run_module('volume_info', dict(given, volume_dir=vdir))
    assert run.rc == 1 and run.failed, run
    for word in words:
        assert word in run.result['msg'], (word, run.result['msg'])


def test_format_without_name_is_refused(run_module, vdir):
    run = run_module('volume_info', {'format': 'raw', 'volume_dir': vdir})
    assert run.failed and 'name' in run.result['msg']


@pytest.fixture
def filled(run_module, vdir):
    run_module('volume', {'name': 'a', 'size': '4M', 'volume_dir': vdir})
    run_module('volume', {'name': 'b', 'size': '8M', 'format': 'qcow2', 'volume_dir': vdir})
    run_module('snapshot', {'volume': 'a', 'name': 's1', 'volume_dir': vdir})
    return vdir


def _check_volume_entry(entry, ret, vdir):
    """Every documented key is there (`error` only for a volume that cannot
    be read), and every key there is documented, here or (as RETURN says:
    "the keys of the volume result") in the volume module's RETURN."""
    documented = set(returned_keys(ret, 'volumes'))
    _vdoc, vret = module_docs('volume')
    assert documented - set(['error']) <= set(entry), documented - set(entry)
    assert set(entry) <= documented | set(returned_keys(vret, 'volume')), set(entry) - documented
    assert entry['backend'] == 'file' and entry['location'] == vdir and entry['state'] == 'present'
    assert 'provider_location' not in entry


@pytest.mark.parametrize('check_mode', [False, True])
def test_list_result(run_module, filled, check_mode):
    _doc, ret = module_docs('volume_info')
    before = sorted(os.listdir(filled))
    run = run_module('volume_info', {'volume_dir': filled}, check_mode=check_mode)
    assert run.rc == 0 and run.result['changed'] is False, run
    assert sorted(os.listdir(filled)) == before
    result = run.result
    for key, doc in ret.items():
        if doc.get('returned') == 'always':
            assert key in result, key
    assert 'volume' not in result and 'shares' not in result and 'diff' not in result
    assert [v['name'] for v in result['volumes']] == ['a', 'b']
    assert sorted(result['volumes_by_name']) == ['a', 'b']
    for entry in result['volumes']:
        _check_volume_entry(entry, ret, filled)
        assert result['volumes_by_name'][entry['name']] == entry
    a, b = result['volumes']
    assert (a['size_bytes'], a['format'], [s['name'] for s in a['snapshots']]) == (4 * MIB, 'raw', ['s1'])
    assert (b['size_bytes'], b['format'], b['snapshots']) == (8 * MIB, 'qcow2', [])
    snap = a['snapshots'][0]
    assert set(['name', 'volume', 'size_bytes', 'dependent', 'pending', 'details']) <= set(snap)
    assert set(['overlay', 'overlay_path', 'data_file', 'stale']) <= set(snap['details'])
    assert set(['directory', 'path', 'active_file', 'active_format', 'virtual_bytes', 'snapshot_map',
                'chain']) <= set(a['details'])
    assert sorted(result['capacity']) == returned_keys(ret, 'capacity')
    assert result['capacity']['provisioned_bytes'] == 12 * MIB
    assert len(result['locations']) == 1
    loc = result['locations'][0]
    assert set(['location', 'total_bytes', 'free_bytes', 'used_bytes', 'allocated_bytes', 'provisioned_bytes',
                'apparent_over_subscription', 'details']) <= set(loc)
    assert loc['location'] == filled and loc['details'] == {'directory': filled}
    assert loc['provisioned_bytes'] == 12 * MIB and loc['total_bytes'] == result['capacity']['total_bytes']


def test_name_result(run_module, filled):
    _doc, ret = module_docs('volume_info')
    run = run_module('volume_info', {'name': 'a', 'volume_dir': filled})
    assert run.rc == 0 and run.result['changed'] is False, run
    result = run.result
    assert 'volume' in result
    _check_volume_entry(result['volume'], ret, filled)
    assert result['volume']['name'] == 'a'
    assert [v['name'] for v in result['volumes']] == ['a'] and list(result['volumes_by_name']) == ['a']
    # one volume does not read the others: no sums
    assert result['capacity']['provisioned_bytes'] is None and result['capacity']['allocated_bytes'] is None
    assert result['locations'][0]['provisioned_bytes'] is None

    missing = run_module('volume_info', {'name': 'nothere', 'volume_dir': filled})
    assert missing.rc == 0 and missing.result['volume'] is None and missing.result['volumes'] == []


def test_empty_location(run_module, vdir):
    run = run_module('volume_info', {'volume_dir': vdir})
    assert run.rc == 0 and run.result['volumes'] == [] and run.result['volumes_by_name'] == {}
    assert run.result['capacity']['provisioned_bytes'] == 0


def test_missing_directory_fails(run_module, tmp_path):
    run = run_module('volume_info', {'volume_dir': str(tmp_path / 'none')})
    assert run.rc == 1 and run.failed and 'none' in run.result['msg']


def test_documented_return_keys_are_the_neutral_ones():
    _doc, ret = module_docs('volume_info')
    file_only = set(['active_file', 'snapshot_map', 'chain', 'overlay', 'overlay_path', 'data_file',
                     'provider_location', 'shares', 'path', 'directory'])
    assert not file_only & set(ret)
    assert not file_only & set(returned_keys(ret, 'volumes'))
    assert not file_only & set(returned_keys(ret, 'capacity'))
