# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The volume module's entry point: its argument spec (required options,
choices, mutual exclusions), and the shape of its exit result for each state
(present, absent, check mode, a copy, a failure), run through the real main()
against a tmp directory. The documented RETURN keys are checked to exist."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

import pytest

from module_harness import module_docs, returned_keys

MIB = 1024 * 1024


def listing(directory):
    return sorted(os.listdir(directory))


# ------------------------------------------------------------------ argument spec
@pytest.mark.parametrize('args, words', [
    ({'size': 1}, ['missing required arguments', 'name']),
    ({'name': 'v', 'state': 'gone'}, ['state', 'present, absent']),
    ({'name': 'v', 'format': 'vmdk'}, ['format', 'raw, qcow2']),
    ({'name': 'v', 'provisioning': 'fat'}, ['provisioning', 'thin, thick']),
    ({'name': 'v', 'backend': 'rbd'}, ['backend', 'file']),
    ({'name': 'v', 'source_image_format': 'vmdk'}, ['source_image_format']),
    ({'name': 'v', 'share': 'h:/e'}, ['mutually exclusive', 'volume_dir', 'share']),
    ({'name': 'v', 'shares': ['h:/e']}, ['mutually exclusive', 'volume_dir', 'shares']),
    ({'name': 'v', 'shares_config': '/etc/x'}, ['mutually exclusive', 'volume_dir', 'shares_config']),
    ({'name': 'v', 'source_image': '/x.img', 'source_volume': 'w'},
     ['mutually exclusive', 'source_image', 'source_volume']),
    ({'name': 'v', 'source_snapshot': 's'}, ['source_snapshot', 'source_volume']),
    ({'name': 'v', 'force': 'maybe'}, ['force']),
    ({'name': 'v', 'bogus': 1}, ['Unsupported parameters', 'bogus']),
])
def test_invalid_arguments_fail_before_anything_is_done(run_module, vdir, args, words):
    run = run_module('volume', dict(args, volume_dir=vdir))
    assert run.rc == 1 and run.failed, run
    for word in words:
        assert word in run.result['msg'], (word, run.result['msg'])
    assert listing(vdir) == []


def test_no_location_is_an_error(run_module):
    run = run_module('volume', {'name': 'v', 'size': 1})
    assert run.failed and 'volume_dir' in run.result['msg']


# ------------------------------------------------------------------ results
def _check_present(volume, directory, size, fmt='raw'):
    assert volume['name'] and volume['state'] == 'present'
    assert (volume['backend'], volume['location'], volume['size_bytes'], volume['format']) == \
        ('file', directory, size, fmt)


def test_present_result(run_module, vdir):
    _doc, ret = module_docs('volume')
    run = run_module('volume', {'name': 'v1', 'size': '4M', 'volume_dir': vdir})
    assert run.rc == 0 and not run.failed, run
    result = run.result
    assert result['changed'] is True
    for key in ret:
        assert key in result, key
    assert sorted(result['volume']) == returned_keys(ret, 'volume')
    _check_present(result['volume'], vdir, 4 * MIB)
    assert result['volume']['provisioning'] == 'thin' and result['volume']['managed'] is True
    assert result['volume']['snapshots'] == [] and result['volume']['pending_operation'] is None
    assert result['location'] == vdir and 'provider_location' not in result
    assert result['actions'] and all(isinstance(a, str) for a in result['actions'])
    assert result['diff']['before'] == {'state': 'absent'}
    assert result['diff']['after'] == {'state': 'present', 'format': 'raw', 'provisioning': 'thin',
                                       'size_bytes': 4 * MIB, 'managed': True, 'snapshots': []}
    details = result['volume']['details']
    for key in ('directory', 'path', 'active_file', 'active_format', 'virtual_bytes', 'snapshot_map', 'chain'):
        assert key in details, key
    for key in ('active_file', 'snapshot_map', 'chain', 'path'):
        assert key not in result['volume'], key

    again = run_module('volume', {'name': 'v1', 'size': '4M', 'volume_dir': vdir})
    assert again.rc == 0 and again.result['changed'] is False and again.result['actions'] == []
    assert again.result['volume'] == dict(result['volume'], allocated_bytes=again.result['volume']['allocated_bytes'])

    grown = run_module('volume', {'name': 'v1', 'size': '8M', 'volume_dir': vdir})
    assert grown.result['changed'] is True and grown.result['volume']['size_bytes'] == 8 * MIB
    assert grown.result['diff']['before']['size_bytes'] == 4 * MIB


def test_check_mode_result(run_module, vdir):
    before = listing(vdir)
    run = run_module('volume', {'name': 'v1', 'size': '4M', 'format': 'qcow2', 'volume_dir': vdir},
                     check_mode=True)
    assert run.rc == 0 and run.result['changed'] is True and run.result['actions']
    assert listing(vdir) == before
    _doc, ret = module_docs('volume')
    for key in ret:
        assert key in run.result, key
    assert sorted(run.result['volume']) == returned_keys(ret, 'volume')
    _check_present(run.result['volume'], vdir, 4 * MIB, 'qcow2')
    real = run_module('volume', {'name': 'v1', 'size': '4M', 'format': 'qcow2', 'volume_dir': vdir})
    assert real.result['actions'] == run.result['actions']
    assert real.result['diff']['after'] == run.result['diff']['after']
    # absent in check mode
    before = listing(vdir)
    run = run_module('volume', {'name': 'v1', 'state': 'absent', 'volume_dir': vdir}, check_mode=True)
    assert run.result['changed'] is True and run.result['volume']['state'] == 'absent'
    assert listing(vdir) == before


def test_absent_result(run_module, vdir):
    run_module('volume', {'name': 'v1', 'size': '4M', 'volume_dir': vdir})
    run = run_module('volume', {'name': 'v1', 'state': 'absent', 'volume_dir': vdir})
    assert run.rc == 0 and run.result['changed'] is True and run.result['actions']
    assert run.result['volume'] == {'name': 'v1', 'backend': 'file', 'location': vdir, 'state': 'absent'}
    assert run.result['location'] == vdir
    assert run.result['diff']['after'] == {'state': 'absent'}
    assert run.result['diff']['before']['state'] == 'present'
    assert listing(vdir) == []
    again = run_module('volume', {'name': 'v1', 'state': 'absent', 'volume_dir': vdir})
    assert again.result['changed'] is False and again.result['actions'] == []
    assert again.result['volume']['state'] == 'absent'


def test_copy_result(run_module, vdir):
    run_module('volume', {'name': 'src', 'size': '4M', 'volume_dir': vdir})
    run_module('snapshot', {'volume': 'src', 'name': 'snap1', 'volume_dir': vdir})
    run = run_module('volume', {'name': 'dst', 'source_volume': 'src', 'source_snapshot': 'snap1', 'size': '8M',
                                'volume_dir': vdir})
    assert run.rc == 0 and run.result['changed'] is True, run
    _check_present(run.result['volume'], vdir, 8 * MIB)
    clone = run_module('volume', {'name': 'cl', 'source_volume': 'src', 'volume_dir': vdir})
    _check_present(clone.result['volume'], vdir, 4 * MIB)


def test_failure_result(run_module, vdir):
    run_module('volume', {'name': 'v1', 'size': '8M', 'volume_dir': vdir})
    run = run_module('volume', {'name': 'v1', 'size': '4M', 'volume_dir': vdir})
    assert run.rc == 1 and run.failed and 'shrink' in run.result['msg']
    run = run_module('volume', {'name': 'bad.name', 'size': '4M', 'volume_dir': vdir})
    assert run.failed and 'bad.name' in run.result['msg']
    run = run_module('volume', {'name': 'new', 'volume_dir': vdir})
    assert run.failed and 'size' in run.result['msg']
    run = run_module('volume', {'name': 'cp', 'source_volume': 'nothere', 'volume_dir': vdir})
    assert run.failed and 'nothere' in run.result['msg']
    assert 'exception' not in run.result or 'Traceback' not in run.result.get('msg', '')


def test_documented_return_keys_are_the_neutral_ones():
    """No module RETURN documents a file-only key outside `details`."""
    _doc, ret = module_docs('volume')
    file_only = set(['active_file', 'snapshot_map', 'chain', 'overlay', 'overlay_path', 'data_file',
                     'provider_location', 'path', 'directory'])
    assert not file_only & set(ret)
    assert not file_only & set(returned_keys(ret, 'volume'))
