# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):

    # Modules that change something.
    DOCUMENTATION = r'''
attributes:
  check_mode:
    description: Can run in check mode and return the exact actions it would take (C(actions)) without writing
      anything, not even a lock file.
    support: full
  diff_mode:
    description: Returns C(diff) (what changes, before and after); it is also returned without diff mode.
    support: full
  platform:
    description: Runs on the managed host that holds or mounts the storage.
    support: full
    platforms: posix
'''

    # Modules that only read.
    INFO_MODULE = r'''
attributes:
  check_mode:
    description: Reads only, so check mode changes nothing and returns the same result.
    support: full
  diff_mode:
    description: Changes nothing, so there is no diff.
    support: none
  platform:
    description: Runs on the managed host that holds or mounts the storage.
    support: full
    platforms: posix
'''
