# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers of the module entry-point tests. Run a module's real main() in-process, as Ansible would run it: the
arguments through ansible.module_utils.testing.patch_module_args, the result
read back from the JSON exit_json / fail_json print before SystemExit."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import importlib
import json
import os

import pytest
import yaml

from ansible.module_utils.testing import patch_module_args

PREFIX = 'ansible_collections.blockyard.storage.plugins.'


class ModuleRun(object):
    def __init__(self, rc, result):
        self.rc = rc
        self.result = result

    @property
    def failed(self):
        return bool(self.result.get('failed'))

    def __repr__(self):
        return 'ModuleRun(rc=%s, %r)' % (self.rc, self.result)


def run_main(module_name, args, capsys, check_mode=False):
    module = importlib.import_module(PREFIX + 'modules.' + module_name)
    args = dict(args)
    if check_mode:
        args['_ansible_check_mode'] = True
    capsys.readouterr()
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exited:
            module.main()
    out = capsys.readouterr().out
    text = out.strip().splitlines()[-1] if out.strip() else ''
    try:
        result = json.loads(text)
    except ValueError:
        raise AssertionError('module %s printed no JSON result: %r' % (module_name, out))
    rc = exited.value.code
    return ModuleRun(rc, result)


@pytest.fixture
def run_module(capsys):
    """run_module(name, args, check_mode=False) -> ModuleRun."""
    def run(module_name, args, check_mode=False):
        return run_main(module_name, args, capsys, check_mode)
    return run


@pytest.fixture
def vdir(tmp_path):
    path = tmp_path / 'volumes'
    path.mkdir()
    return os.path.realpath(str(path))


def module_docs(module_name):
    """(DOCUMENTATION, RETURN) of a module, parsed."""
    module = importlib.import_module(PREFIX + 'modules.' + module_name)
    return yaml.safe_load(module.DOCUMENTATION), yaml.safe_load(module.RETURN)


def fragment_options(name):
    """The options of a doc fragment `blockyard.storage.<file>[.<VAR>]`."""
    parts = name.split('.')[2:]
    fragment = importlib.import_module(PREFIX + 'doc_fragments.' + parts[0]).ModuleDocFragment
    text = getattr(fragment, parts[1].upper() if len(parts) > 1 else 'DOCUMENTATION')
    return (yaml.safe_load(text) or {}).get('options', {})


def documented_options(module_name):
    doc, _ret = module_docs(module_name)
    options = dict(doc.get('options') or {})
    for fragment in doc.get('extends_documentation_fragment') or []:
        options.update(fragment_options(fragment))
    return options


def returned_keys(ret, key):
    """The documented keys under RETURN[key].contains."""
    return sorted((ret[key].get('contains') or {}).keys())


class _Captured(Exception):
    pass


def module_spec(module_name):
    """The keyword arguments main() gives AnsibleModule (argument_spec,
    mutually_exclusive, required_by...), without running anything."""
    module = importlib.import_module(PREFIX + 'modules.' + module_name)
    seen = {}

    def fake(**kwargs):
        seen.update(kwargs)
        raise _Captured()
    original = module.AnsibleModule
    module.AnsibleModule = fake
    try:
        module.main()
    except _Captured:
        pass
    finally:
        module.AnsibleModule = original
    return seen
