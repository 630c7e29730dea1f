# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rbd backend: volumes as Ceph RBD images, in the layout of Cinder's RBD driver."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.blockyard.storage.plugins.module_utils.backends.rbd.backend import RbdBackend

BACKEND = RbdBackend
