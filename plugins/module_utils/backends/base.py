# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The interface every volume backend implements.

Planning methods return ``(plan, volume)``: a Plan (empty when nothing is to
change) and the state read before it. ``describe`` turns a state into the
result dict the modules return."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class Backend:
    kind = None

    def exists(self, name):
        raise NotImplementedError

    def load(self, name, fmt=None):
        raise NotImplementedError

    def describe(self, volume):
        raise NotImplementedError

    def list_names(self):
        raise NotImplementedError

    def capacity(self):
        raise NotImplementedError

    def recover(self, name, check_mode=False):
        """Complete or undo an interrupted operation; return its actions."""
        return []

    def plan_present(self, name, fmt=None, size=None, provisioning=None, source=None, adopt_format=None):
        raise NotImplementedError

    def plan_absent(self, name, force=False):
        raise NotImplementedError

    def plan_snapshot_present(self, name, snap):
        raise NotImplementedError

    def plan_snapshot_absent(self, name, snap):
        raise NotImplementedError

    def plan_revert(self, name, snap):
        raise NotImplementedError
