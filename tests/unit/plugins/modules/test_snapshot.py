# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The snapshot module's entry point: argument spec, and the exit result's
shape for present, absent and reverted (and check mode), through the real
main() against a tmp directory. The documented RETURN keys exist."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import subprocess

import pytest

from module_harness import module_docs, returned_keys

MIB = 1024 * 1024


def listing(directory):
    return sorted(os.listdir(directory))


@pytest.fixture
def vol(run_module, vdir):
    run = run_module('volume', {'name': 'db', 'size': '4M', 'volume_dir': vdir})
    assert run.rc == 0, run
    return vdir


def args(vdir, name='s1', **kwargs):
    return dict({'volume': 'db', 'name': name, 'volume_dir': vdir}, **kwargs)


def write(run_module, vdir, pattern):
    """Write into the volume's active data (as a guest would)."""
    info = run_module('volume_info', {'name': 'db', 'volume_dir': vdir}).result['volume']
    details = info['details']
    res = subprocess.run(['qemu-io', '-f', details['active_format'], '-c', 'write -P %d 0 65536' % pattern,
                          details['path']], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    assert res.returncode == 0, res.stdout


@pytest.mark.parametrize('given, words', [
    ({'name': 's1'}, ['missing required arguments', 'volume']),
    ({'volume': 'db'}, ['missing required arguments', 'name']),
    ({'volume': 'db', 'name': 's1', 'state': 'merged'}, ['state', 'present, absent, reverted']),
    ({'volume': 'db', 'name': 's1', 'share': 'h:/e'}, ['mutually exclusive', 'volume_dir', 'share']),
    ({'volume': 'db', 'name': 's1', 'shares_config': '/x'}, ['mutually exclusive', 'volume_dir']),
    ({'volume': 'db', 'name': 's1', 'size': 1}, ['Unsupported parameters', 'size']),
    ({'volume': 'db', 'name': 's1', 'max_over_subscription_ratio': 2.0},
     ['Unsupported parameters', 'max_over_subscription_ratio']),
])
def test_invalid_arguments(run_module, vol, given, words):
    before = listing(vol)
    run = run_module('snapshot', dict(given, volume_dir=vol))
    assert run.rc == 1 and run.failed, run
    for word in words:
        assert word in run.result['msg'], (word, run.result['msg'])
    assert listing(vol) == before


@pytest.mark.parametrize('name', ['info', 'meta', 'lock', 'journal', 'bad.name', 'a/b'])
def test_reserved_and_invalid_names(run_module, vol, name):
    before = listing(vol)
    run = run_module('snapshot', args(vol, name))
    assert run.failed and name in run.result['msg'], run
    assert listing(vol) == before


def _check_snapshot(snapshot, ret, vdir, name, state):
    assert sorted(snapshot) == returned_keys(ret, 'snapshot')
    assert (snapshot['name'], snapshot['volume'], snapshot['location'], snapshot['state']) == \
        (name, 'db', vdir, state)
    assert snapshot['size_bytes'] == 4 * MIB
    assert snapshot['dependent'] in (True, False) and snapshot['pending'] is False
    for key in ('overlay', 'overlay_path', 'data_file', 'stale', 'snapshot_map'):
        assert key in snapshot['details'], key
        assert key not in snapshot, key


def test_present_result(run_module, vol):
    _doc, ret = module_docs('snapshot')
    check = run_module('snapshot', args(vol), check_mode=True)
    assert check.rc == 0 and check.result['changed'] is True and check.result['actions']
    assert listing(vol) == ['volume-db', 'volume-db.lock', 'volume-db.meta']
    _check_snapshot(check.result['snapshot'], ret, vol, 's1', 'present')

    run = run_module('snapshot', args(vol))
    assert run.rc == 0 and run.result['changed'] is True, run
    for key in ret:
        assert key in run.result, key
    assert run.result['actions'] == check.result['actions']
    _check_snapshot(run.result['snapshot'], ret, vol, 's1', 'present')
    assert run.result['location'] == vol
    assert run.result['diff']['before'] == {'snapshots': []}
    assert run.result['diff']['after'] == {'snapshots': ['s1']}
    assert check.result['diff'] == run.result['diff']
    assert run.result['snapshot']['details']['snapshot_map'] == {'active': 'volume-db.s1', 's1': 'volume-db.s1'}

    run2 = run_module('snapshot', args(vol, 's2'))
    assert run2.result['diff'] == dict(run.result['diff'], before={'snapshots': ['s1']},
                                       after={'snapshots': ['s1', 's2']})
    again = run_module('snapshot', args(vol, 's2'))
    assert again.result['changed'] is False and again.result['actions'] == []
    _check_snapshot(again.result['snapshot'], ret, vol, 's2', 'present')


def test_absent_result(run_module, vol):
    run_module('snapshot', args(vol, 's1'))
    run_module('snapshot', args(vol, 's2'))
    before = listing(vol)
    check = run_module('snapshot', args(vol, 's1', state='absent'), check_mode=True)
    assert check.result['changed'] is True and listing(vol) == before
    run = run_module('snapshot', args(vol, 's1', state='absent'))
    assert run.rc == 0 and run.result['changed'] is True and run.result['actions'] == check.result['actions']
    assert run.result['snapshot'] == {'name': 's1', 'volume': 'db', 'location': vol, 'state': 'absent'}
    assert run.result['diff']['before'] == {'snapshots': ['s1', 's2']}
    assert run.result['diff']['after'] == {'snapshots': ['s2']}
    assert check.result['snapshot'] == run.result['snapshot'] and check.result['diff'] == run.result['diff']
    again = run_module('snapshot', args(vol, 's1', state='absent'))
    assert again.result['changed'] is False and again.result['snapshot']['state'] == 'absent'
    assert again.result['diff']['before'] == again.result['diff']['after'] == {'snapshots': ['s2']}


def test_reverted_result(run_module, vol):
    _doc, ret = module_docs('snapshot')
    run_module('snapshot', args(vol, 's1'))
    same = run_module('snapshot', args(vol, 's1', state='reverted'))
    assert same.rc == 0 and same.result['changed'] is False and same.result['actions'] == []
    assert same.result['diff']['before'] == same.result['diff']['after'] == {'snapshots': ['s1']}
    write(run_module, vol, 0x41)
    before = listing(vol)
    check = run_module('snapshot', args(vol, 's1', state='reverted'), check_mode=True)
    assert check.result['changed'] is True and listing(vol) == before
    run = run_module('snapshot', args(vol, 's1', state='reverted'))
    assert run.rc == 0 and run.result['changed'] is True and run.result['actions'] == check.result['actions']
    _check_snapshot(run.result['snapshot'], ret, vol, 's1', 'reverted')
    assert run.result['diff']['before'] == {'snapshots': ['s1'], 'data_since_snapshot': 'present'}
    assert run.result['diff']['after'] == {'snapshots': ['s1'], 'data_since_snapshot': 'discarded'}
    assert check.result['diff'] == run.result['diff']


def test_failures(run_module, vol):
    run = run_module('snapshot', args(vol, 's1', volume='nothere'))
    assert run.rc == 1 and run.failed and 'nothere' in run.result['msg']
    run = run_module('snapshot', args(vol, 'nope', state='reverted'))
    assert run.failed and 'nope' in run.result['msg']
    run_module('snapshot', args(vol, 's1'))
    run_module('snapshot', args(vol, 's2'))
    run = run_module('snapshot', args(vol, 's1', state='reverted'))
    assert run.failed and 'latest' in run.result['msg']


def test_documented_return_keys_are_the_neutral_ones():
    _doc, ret = module_docs('snapshot')
    file_only = set(['overlay', 'overlay_path', 'data_file', 'snapshot_map', 'stale', 'provider_location'])
    assert not file_only & set(ret)
    assert not file_only & set(returned_keys(ret, 'snapshot'))
