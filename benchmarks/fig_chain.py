# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Figure chain_info_vs_qemu_img: the volume_info core listing a 64-deep qcow2
chain (header reads in Python, in process) vs `qemu-img info --backing-chain`
on the same active file."""

import json
import os

from lib import core, figure, log, median, run, timed


def chain_info_vs_qemu_img(ctx):
    volumes, _fileio = core()
    depth = 8 if ctx.quick else 64
    ours_reps = 5 if ctx.quick else 30
    qemu_reps = 3 if ctx.quick else 10
    vol_dir = ctx.scratch('chain')
    loc = {'volume_dir': vol_dir}
    log('building a %d-deep chain with the snapshot core (not timed)' % depth)
    volumes.ensure_volume(dict(loc, name='deep', size='64M', mode='0660'), False)
    for i in range(depth):
        volumes.ensure_snapshot(dict(loc, volume='deep', name='s%03d' % i), False)
    params = dict(loc, name='deep')
    _changed, info, _diff = volumes.volume_info(params)
    vol = info['volume']['details']
    active = vol['path']
    argv = ['qemu-img', 'info', '--backing-chain', '--output=json', '-U', active]
    qemu_chain = json.loads(run(argv, universal_newlines=True).stdout)
    if len(vol['chain']) != depth + 1 or len(qemu_chain) != depth + 1:
        raise RuntimeError('chain length: ours %d, qemu-img %d, expected %d'
                           % (len(vol['chain']), len(qemu_chain), depth + 1))
    ours_files = [os.path.basename(e['path']) for e in vol['chain']]
    qemu_files = [os.path.basename(e['filename']) for e in qemu_chain]
    if ours_files != qemu_files:
        raise RuntimeError('chains differ: ours %s, qemu-img %s' % (ours_files[:3], qemu_files[:3]))
    backend = volumes.candidate_backends(loc)[0][0]

    def load_describe():
        return backend.load('deep').to_result()
    ours, qemu, chain_only = [], [], []
    for rep in range(max(ours_reps, qemu_reps)):
        if rep < qemu_reps:
            qemu.append(timed(run, argv)[0])
        if rep < ours_reps:
            ours.append(timed(volumes.volume_info, params)[0])
            chain_only.append(timed(load_describe)[0])
    return [figure(
        'chain_info_vs_qemu_img',
        'volume_info core on a %d-deep qcow2 chain vs qemu-img info --backing-chain' % depth,
        'qemu-img info --backing-chain --output=json -U <active> (process)',
        'volumes.volume_info({volume_dir, name}) in process (header reads, capacity)',
        qemu, ours, 'baseline/ours', '>=', 20, chain_files=depth + 1,
        load_describe_s={'median': round(median(chain_only), 6), 'samples': [round(x, 6) for x in chain_only],
                         'ratio_baseline_ours': round(median(qemu) / median(chain_only), 2),
                         'what': 'backend.load + to_result only (no capacity), informational'},
        repetitions={'baseline': qemu_reps, 'ours': ours_reps})]
