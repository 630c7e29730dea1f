# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rbd_image module's entry point, without a cluster: its argument spec
matches the documentation (suboptions too, and the Ceph connection options
come from the blockyard.storage.ceph fragment), bad arguments fail before
anything connects, and the docs name the bindings. Runs against a real
cluster: tests/functional/test_rbd_image.py."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from module_harness import documented_options, fragment_options, module_docs, module_spec

from ansible_collections.blockyard.storage.plugins.module_utils import ceph, rbd_images


def _same(spec, doc, where):
    assert sorted(spec) == sorted(doc), where
    for name, option in spec.items():
        d = doc[name]
        assert option.get('type', 'str') == d.get('type', 'str'), (where, name)
        assert option.get('elements') == d.get('elements'), (where, name)
        assert option.get('choices') == d.get('choices'), (where, name)
        assert bool(option.get('required')) == bool(d.get('required')), (where, name)
        assert option.get('default') == d.get('default'), (where, name)
        if 'options' in option:
            _same(option['options'], d.get('suboptions') or {}, '%s.%s' % (where, name))


def test_spec_matches_the_documentation_with_suboptions():
    spec = module_spec('rbd_image')
    assert spec['supports_check_mode'] is True
    _same(spec['argument_spec'], documented_options('rbd_image'), 'rbd_image')


def test_connection_options_are_the_ceph_fragment():
    doc, _ret = module_docs('rbd_image')
    assert 'blockyard.storage.ceph' in doc['extends_documentation_fragment']
    fragment = fragment_options('blockyard.storage.ceph')
    assert sorted(fragment) == sorted(ceph.CONNECTION_ARGS)
    own = doc['options']
    assert not set(own) & set(ceph.CONNECTION_ARGS), 'connection options are documented once, in the fragment'
    _same(dict(ceph.CONNECTION_ARGS), fragment, 'ceph fragment')


def test_docs_name_the_bindings_and_the_result():
    doc, ret = module_docs('rbd_image')
    assert any('python3-rados' in r and 'python3-rbd' in r for r in doc['requirements'])
    assert sorted(ret) == ['actions', 'diff', 'image']
    assert sorted(ret['image']['contains']) == sorted([
        'name', 'pool', 'namespace', 'size_bytes', 'features', 'object_size_bytes', 'order', 'data_pool', 'parent',
        'snapshots', 'watchers', 'id'])


@pytest.mark.parametrize('given, words', [
    ({'pool': 'rbd'}, ['missing required arguments', 'name']),
    ({'name': 'x'}, ['missing required arguments', 'pool']),
    ({'name': 'x', 'pool': 'rbd', 'state': 'gone'}, ['state', 'present, absent']),
    ({'name': 'x', 'pool': 'rbd', 'clone_from': {'pool': 'rbd', 'image': 'p'}}, ['snapshot', 'clone_from']),
    ({'name': 'x', 'pool': 'rbd', 'snapshots': [{'protected': True}]}, ['name', 'snapshots']),
    ({'name': 'x', 'pool': 'rbd', 'volume_dir': '/tmp'}, ['Unsupported parameters', 'volume_dir']),
])
def test_invalid_arguments_fail_before_connecting(run_module, given, words):
    run = run_module('rbd_image', given)
    assert run.rc == 1 and run.failed, run
    for word in words:
        assert word in run.result['msg'], (word, run.result['msg'])


@pytest.mark.parametrize('given, words', [
    ({'name': 'a/b'}, ['image name', 'a/b']),
    ({'name': 'x', 'size': '1Q'}, ['unit']),
    ({'name': 'x', 'features': ['layering', 'nope']}, ['unknown features nope']),
    ({'name': 'x', 'object_size': '5M'}, ['power of two']),
    ({'name': 'x', 'ceph_conf': '/nonexistent/ceph.conf'}, ['ceph_conf', 'does not exist']),
])
def test_bad_values_fail_with_a_message(run_module, given, words):
    """Names and values are checked before the bindings are needed (or, without them, the message names them)."""
    run = run_module('rbd_image', dict({'pool': 'rbd', 'size': '4M'}, **given))
    assert run.rc == 1 and run.failed, run
    if ceph.IMPORT_ERROR is not None:
        assert 'python3-rados' in run.result['msg']
        return
    for word in words:
        assert word in run.result['msg'], (word, run.result['msg'])


def test_argument_spec_is_the_cores():
    spec = module_spec('rbd_image')['argument_spec']
    assert spec == rbd_images.argument_spec()
