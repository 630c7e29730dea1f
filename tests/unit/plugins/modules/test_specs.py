# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every volume module's argument spec matches its documented options."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from module_harness import documented_options, module_spec


@pytest.mark.parametrize('module', ['volume', 'snapshot', 'volume_info', 'rbd_image', 'iscsi_target', 'export'])
def test_argument_spec_matches_the_documentation(module):
    spec = module_spec(module)
    options = documented_options(module)
    assert sorted(spec['argument_spec']) == sorted(options)
    for name, option in spec['argument_spec'].items():
        doc = options[name]
        assert option.get('type', 'str') == doc.get('type', 'str'), name
        assert option.get('choices') == doc.get('choices'), name
        assert bool(option.get('required')) == bool(doc.get('required')), name
        assert option.get('default') == doc.get('default'), name
    assert spec['supports_check_mode'] is True
