# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Figure rbd_cycle_vs_cli: the life of a 1 GiB RBD volume (create, snapshot,
clone, delete the clone, delete the snapshot, delete the volume) through the
core (volumes.ensure_volume / ensure_snapshot, backend rbd), against the
`rbd` CLI doing the same steps (one process per call, as Cinder's scripts
and operators do). The core's tasks each connect anew (the connection cache
is emptied before each one), as separate module runs would.

The Ceph lab of the tests (scripts/ceph-lab) serves it: started when it is
not running, and stopped again then (BLOCKYARD_CEPH_DIR / _PORT as in the
tests)."""

import os
import subprocess
import uuid

from lib import GiB, ROOT, figure, log, run, timed

LAB = os.path.join(ROOT, 'scripts', 'ceph-lab')
DIR = os.environ.get('BLOCKYARD_CEPH_DIR', '/var/lib/byceph')
PORT = os.environ.get('BLOCKYARD_CEPH_PORT', '6789')
CONF = os.path.join(DIR, 'ceph.conf')


def _lab(action):
    env = dict(os.environ, CEPH_LAB_DIR=DIR, CEPH_LAB_PORT=PORT)
    return subprocess.run([LAB, action], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, check=False)


def _cli(namespace, tag):
    rbd = ['rbd', '-c', CONF]
    v, c = 'rbd/%s/cli-%s' % (namespace, tag), 'rbd/%s/clone-%s' % (namespace, tag)
    snap = 'clone-%s.clone_snap' % tag
    return [
        rbd + ['create', '--size', '1G', '--image-feature', 'layering', v],
        rbd + ['snap', 'create', '%s@s1' % v],
        rbd + ['snap', 'protect', '%s@s1' % v],
        rbd + ['snap', 'create', '%s@%s' % (v, snap)],
        rbd + ['snap', 'protect', '%s@%s' % (v, snap)],
        rbd + ['clone', '%s@%s' % (v, snap), c],
        rbd + ['rm', '--no-progress', c],
        rbd + ['snap', 'unprotect', '%s@%s' % (v, snap)],
        rbd + ['snap', 'rm', '--no-progress', '%s@%s' % (v, snap)],
        rbd + ['snap', 'unprotect', '%s@s1' % v],
        rbd + ['snap', 'rm', '--no-progress', '%s@s1' % v],
        rbd + ['rm', '--no-progress', v],
    ]


def _bare(rbd, ioctx, tag):
    """The same steps through librbd in one process and one connection: the
    cluster's own share of the work, which no client can go below."""
    v, c = 'bare-%s' % tag, 'clone-%s' % tag
    snap = '%s.clone_snap' % c
    r = rbd.RBD()
    r.create(ioctx, v, GiB, order=22, old_format=False, features=rbd.RBD_FEATURE_LAYERING)
    with rbd.Image(ioctx, v) as image:
        image.create_snap('s1')
        image.protect_snap('s1')
        image.create_snap(snap)
        image.protect_snap(snap)
    r.clone(ioctx, v, snap, ioctx, c, features=rbd.RBD_FEATURE_LAYERING)
    r.remove(ioctx, c)
    with rbd.Image(ioctx, v) as image:
        image.unprotect_snap(snap)
        image.remove_snap(snap)
        image.unprotect_snap('s1')
        image.remove_snap('s1')
    r.remove(ioctx, v)


def _ours(volumes, ceph, base, tag):
    v, c = 'core-%s' % tag, 'clone-%s' % tag
    tasks = [
        (volumes.ensure_volume, dict(base, name=v, size='1G')),
        (volumes.ensure_snapshot, dict(base, volume=v, name='s1', state='present')),
        (volumes.ensure_volume, dict(base, name=c, source_volume=v)),
        (volumes.ensure_volume, dict(base, name=c, state='absent')),
        (volumes.ensure_snapshot, dict(base, volume=v, name='s1', state='absent')),
        (volumes.ensure_volume, dict(base, name=v, state='absent')),
    ]
    for func, params in tasks:
        ceph.Cluster.close_all()        # one module run: one connection
        changed, _result, _diff = func(params, False)
        if not changed:
            raise RuntimeError('%s %s changed nothing' % (func.__name__, params.get('name')))


def rbd_cycle_vs_cli(ctx):
    from ansible_collections.blockyard.storage.plugins.module_utils import ceph, common, volumes
    started = _lab('status').returncode != 0
    if started:
        res = _lab('start')
        if res.returncode != 0:
            raise RuntimeError('scripts/ceph-lab start failed: %s' % res.stdout[-2000:])
    try:
        import rados
        import rbd
        admin = rados.Rados(conffile=CONF)
        admin.connect()
        namespace = 'bench-%s' % uuid.uuid4().hex[:8]
        ioctx = admin.open_ioctx('rbd')
        rbd.RBD().namespace_create(ioctx, namespace)
        base = dict((k, v.get('default')) for k, v in common.location_args(placement=True).items())
        base.update(backend='rbd', pool='rbd', namespace=namespace, ceph_conf=CONF, size=None, format=None,
                    provisioning=None, force=False, source_volume=None, source_snapshot=None, source_image=None,
                    source_image_format=None, source_location=None, state='present')
        reps = 2 if ctx.quick else 7
        samples = {'cli': [], 'core': [], 'bare': []}
        bare_ioctx = admin.open_ioctx('rbd')
        bare_ioctx.set_namespace(namespace)
        for rep in range(reps):
            for side in (('cli', 'core', 'bare') if rep % 2 == 0 else ('bare', 'core', 'cli')):
                tag = '%s%d' % (side, rep)
                if side == 'cli':
                    seconds = timed(lambda: [run(cmd) for cmd in _cli(namespace, tag)])[0]
                elif side == 'bare':
                    seconds = timed(_bare, rbd, bare_ioctx, tag)[0]
                else:
                    seconds = timed(_ours, volumes, ceph, base, tag)[0]
                samples[side].append(seconds)
                log('rep %d: %s %.3f s' % (rep + 1, side, seconds))
        ioctx.set_namespace(namespace)
        left = rbd.RBD().list(ioctx)
        if left:
            raise RuntimeError('images left behind: %s' % left)
        ioctx.set_namespace('')
        rbd.RBD().namespace_remove(ioctx, namespace)
        bare_ioctx.close()
        ioctx.close()
        admin.shutdown()
        ceph.Cluster.close_all()
    finally:
        if started:
            _lab('stop')
    return [figure(
        'rbd_cycle_vs_cli',
        'RBD volume of 1 GiB: create, snapshot, clone, delete clone, delete snapshot, delete volume',
        'rbd CLI, 12 calls (a process and a connection each)',
        'core, 6 tasks (volumes.ensure_*, backend rbd, a connection each)',
        samples['cli'], samples['core'], 'ours/baseline', '<=', 0.5, repetitions=reps,
        size_bytes=GiB), figure(
        'rbd_cycle_vs_bare_librbd',
        'the same cycle: the core against the bare librbd calls it makes (the cluster\'s own share of the time)',
        'librbd, the 12 calls in one process and one connection (no lock, journal, checks or results)',
        'core, 6 tasks (a connection each)',
        samples['bare'], samples['core'], 'ours/baseline', '<=', 1.5, informational=True, repetitions=reps,
        size_bytes=GiB)]
