# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lvm backend: volumes as logical volumes of a volume group, in the layout of Cinder's LVM driver."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.blockyard.storage.plugins.module_utils.backends.lvm.backend import LvmBackend

BACKEND = LvmBackend
