# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Two processes create and delete snapshots of the same volume at once.

Each worker, for every create, takes the volume lock (locks.volume_lock),
writes its own pattern into the active file, logs the write and takes the
snapshot, all under that lock (the core's own lock is re-entrant in the
process), so that the log order is the order of the points in time. Deletes
go through the core alone (its lock only). Afterwards every remaining
snapshot must hold exactly the writes logged before it, the live data all of
them, the .info must be whole and in Cinder's format, and no journal may be
left. The worker and the checks are in snapchain (GlusterFS runs them too)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

import pytest

import snapchain as sc

OPS_PER_WORKER = 20


@pytest.mark.parametrize('seed', ['one', 'two'])
def test_two_processes_on_one_volume(vdir, seed):
    sc.volume(vdir, 'V', size='4M')
    summary = sc.concurrent_snapshots(vdir, os.path.dirname(vdir), OPS_PER_WORKER, seed)
    print(summary)
