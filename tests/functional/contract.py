# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers of the backend contract suite (test_contract.py).

The suite speaks only the neutral API: the module params of a location, the
results of volumes.ensure_volume / ensure_snapshot / volume_info, and the
contract of backends/base.py (data_ref, capabilities, require_capability).
Each backend location is a Location: its kind, its module params, a way to
make a fresh one per test, and a listing that proves check mode wrote
nothing. Data is read and written through the DataRef a backend hands out
(qemu-io -f <ref.format> <target of the ref>), never through file names, so
RBD and LVM join by adding a Location (and a target for their DataRef kind)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import os
import shutil
import subprocess
import tempfile
import time

import snapchain as sc
from ansible_collections.blockyard.storage.plugins.module_utils import common, volumes

MIB = sc.MIB
SIZE = 4 * MIB

# What the modules pass for every option left out (their argument specs' defaults).
DEFAULTS = dict((k, v.get('default')) for k, v in common.location_args(placement=True, ownership=True).items())

# The keys every backend returns (as openstack.cloud's ci/roles/volume/defaults/main.yml lists expected_fields).
VOLUME_FIELDS = ['name', 'backend', 'location', 'state', 'size_bytes', 'format', 'provisioning', 'allocated_bytes',
                 'managed', 'snapshots', 'pending_operation', 'details']
ABSENT_VOLUME_FIELDS = ['name', 'backend', 'location', 'state']
VOLUME_SNAPSHOT_FIELDS = ['name', 'volume', 'size_bytes', 'dependent', 'pending', 'details']
SNAPSHOT_FIELDS = ['name', 'volume', 'location', 'state', 'size_bytes', 'dependent', 'pending', 'details']
ABSENT_SNAPSHOT_FIELDS = ['name', 'volume', 'location', 'state']
VOLUME_DIFF_FIELDS = ['state', 'format', 'provisioning', 'size_bytes', 'managed', 'snapshots']
CAPACITY_FIELDS = ['location', 'total_bytes', 'free_bytes', 'used_bytes', 'allocated_bytes', 'provisioned_bytes',
                   'apparent_over_subscription', 'details']
TOTAL_CAPACITY_FIELDS = ['total_bytes', 'free_bytes', 'used_bytes', 'allocated_bytes', 'provisioned_bytes',
                         'apparent_over_subscription']
VOLUME_RESULT_FIELDS = ['actions', 'location', 'volume']
SNAPSHOT_RESULT_FIELDS = ['actions', 'location', 'snapshot']
INFO_RESULT_FIELDS = ['volumes', 'volumes_by_name', 'capacity', 'locations']


def missing(mapping, fields):
    return [f for f in fields if f not in mapping]


# ------------------------------------------------------------------ locations
def _run(argv, timeout=300):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                          timeout=timeout, check=False)


class Location(object):
    """A location of one backend kind that a test may fill: `params` are the
    module's location options (backend included); `listing()` is a stable
    picture of everything stored there."""

    kind = None

    def __init__(self, label, params, root):
        self.label = label
        self.params = dict(params)
        self.root = root

    @property
    def location(self):
        """What results name this location as."""
        raise NotImplementedError

    def listing(self):
        raise NotImplementedError

    def listing_names(self):
        """The names of what the location stores (no contents)."""
        raise NotImplementedError


class FileLocation(Location):
    """A directory of the file backend (a plain one, on XFS, on GlusterFS)."""

    kind = 'file'

    def __init__(self, label, directory):
        directory = os.path.realpath(directory)
        super(FileLocation, self).__init__(label, dict(backend='file', volume_dir=directory), directory)

    @property
    def location(self):
        return self.root

    def listing(self):
        return sc.fingerprint(self.root)

    def listing_names(self):
        return os.listdir(self.root)


class FileRoot(object):
    """Where the file-backend Locations of one param are made (one fresh
    directory per test); `close` tears the filesystem down."""

    def __init__(self, label, root, close=None):
        self.label = label
        self.root = root
        self._close = close

    def fresh(self, tag='t'):
        return FileLocation(self.label, tempfile.mkdtemp(prefix='%s-' % tag, dir=self.root))

    def close(self):
        if self._close:
            self._close()


def plain_dir_root():
    base = '/dev/shm' if os.path.isdir('/dev/shm') and os.access('/dev/shm', os.W_OK) else None
    path = os.path.realpath(tempfile.mkdtemp(prefix='blockyard-contract-', dir=base))
    return FileRoot('file-dir', path, lambda: shutil.rmtree(path, ignore_errors=True))


def xfs_root(size_mib=512):
    """A loop-mounted XFS made with reflink=1 (as test_reflink.py makes it)."""
    if os.geteuid() != 0:
        raise RuntimeError('file-xfs needs root (loop mount)')
    work = tempfile.mkdtemp(prefix='blockyard-contract-xfs-')
    image = os.path.join(work, 'xfs.img')
    mount_point = os.path.join(work, 'mnt')
    os.mkdir(mount_point)

    def close():
        if os.path.ismount(mount_point):
            if _run(['umount', mount_point]).returncode != 0:
                _run(['umount', '-l', mount_point])
        shutil.rmtree(work, ignore_errors=True)
    try:
        with open(image, 'wb') as handle:
            handle.truncate(size_mib * MIB)
        res = _run(['mkfs.xfs', '-q', '-m', 'reflink=1', image])
        if res.returncode != 0:
            raise RuntimeError('mkfs.xfs -m reflink=1 failed: %s' % res.stdout)
        res = _run(['mount', '-o', 'loop', image, mount_point])
        if res.returncode != 0:
            raise RuntimeError('cannot loop-mount the XFS image: %s' % res.stdout)
    except Exception:
        close()
        raise
    return FileRoot('file-xfs', os.path.realpath(mount_point), close)


GLUSTER_VOLUME = 'byt-contract'
GLUSTER_HOST = '127.1'          # the gluster CLI refuses 127.0.0.1, accepts 127.1
GLUSTER_LAB_DIR = '/var/lib/blockyard-test/contract-lab'


def gluster_root():
    """A FUSE mount of a GlusterFS volume of its own (scripts/gluster-lab in
    a lab directory of its own, so that its `stop` touches only this volume)."""
    if os.geteuid() != 0:
        raise RuntimeError('file-gluster needs root (glusterd, FUSE mounts)')
    lab = os.path.join(sc.REPO_ROOT, 'scripts', 'gluster-lab')
    env = dict(os.environ, GLUSTER_LAB_DIR=GLUSTER_LAB_DIR, GLUSTER_LAB_HOST=GLUSTER_HOST)
    mount_point = tempfile.mkdtemp(prefix='blockyard-contract-gluster-')

    def close():
        sc.remove_mount(mount_point)
        subprocess.run([lab, 'stop'], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600,
                       check=False)
    try:
        res = subprocess.run([lab, 'start', GLUSTER_VOLUME], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, universal_newlines=True, timeout=600, check=False)
        if res.returncode != 0:
            raise RuntimeError('scripts/gluster-lab start %s failed:\n%s' % (GLUSTER_VOLUME, res.stdout[-4000:]))
        res = _run(['mount', '-t', 'glusterfs', '%s:/%s' % (GLUSTER_HOST, GLUSTER_VOLUME), mount_point])
        if res.returncode != 0:
            raise RuntimeError('mount -t glusterfs failed: %s' % res.stdout)
        from ansible_collections.blockyard.storage.plugins.module_utils import fileio
        deadline = time.time() + 30
        while not (os.path.ismount(mount_point) and fileio.fs_type(mount_point) == 'fuse.glusterfs'):
            if time.time() > deadline:
                raise RuntimeError('%s is not a GlusterFS FUSE mount after mount' % mount_point)
            time.sleep(0.2)
    except Exception:
        close()
        raise
    return FileRoot('file-gluster', os.path.realpath(mount_point), close)


class RbdLocation(Location):
    """A namespace of its own in a pool of the Ceph lab (scripts/ceph-lab)."""

    kind = 'rbd'

    def __init__(self, label, pool, namespace):
        import cephlab
        super(RbdLocation, self).__init__(label, cephlab.params(backend='rbd', pool=pool, namespace=namespace),
                                          '%s/%s' % (pool, namespace))
        self.pool, self.namespace = pool, namespace

    @property
    def location(self):
        return self.root

    def _ioctx(self):
        from ansible_collections.blockyard.storage.plugins.module_utils import ceph
        return ceph.Cluster.get(self.params).ioctx(self.pool, self.namespace)

    def listing(self):
        """Every RADOS object of the namespace, every image's size, parent,
        snapshots (protection, size) and a digest of its data, the trash and
        the journal's keys and values."""
        import rados
        import rbd
        ioctx = self._ioctx()
        objects = sorted(o.key for o in ioctx.list_objects())
        images = {}
        for name in sorted(rbd.RBD().list(ioctx)):
            image = rbd.Image(ioctx, name, read_only=True)
            try:
                snaps = [(s['name'], s['size'], image.is_protected_snap(s['name'])) for s in image.list_snaps()]
                try:
                    parent = image.get_parent_image_spec()
                except rbd.ImageNotFound:
                    parent = None
                digest = hashlib.sha256()
                size = image.size()
                for offset in range(0, size, 4 * MIB):
                    digest.update(image.read(offset, min(4 * MIB, size - offset)))
                images[name] = (size, parent, snaps, digest.hexdigest())
            finally:
                image.close()
        trash = sorted(t['name'] for t in rbd.RBD().trash_list(ioctx))
        with rados.ReadOpCtx() as op:
            values, _ret = ioctx.get_omap_vals(op, '', '', 1000)
            try:
                ioctx.operate_read_op(op, 'blockyard.journal')
                journal = sorted(values)
            except rados.ObjectNotFound:
                journal = []
        return {'objects': objects, 'images': images, 'trash': trash, 'journal': journal}

    def listing_names(self):
        listing = self.listing()
        names = ['image %s' % n for n in listing['images']]
        names += ['snapshot %s@%s' % (n, s[0]) for n, v in listing['images'].items() for s in v[2]]
        names += ['trash %s' % n for n in listing['trash']] + ['journal %s' % k for k, _v in listing['journal']]
        names += ['object %s' % o for o in listing['objects'] if o.startswith('blockyard.lock.')]
        return names


class RbdRoot(object):
    """The Ceph lab; each fresh Location is a new namespace of `pool`."""

    def __init__(self, label, pool):
        import cephlab
        cephlab.ensure()
        self.label = label
        self.pool = pool

    def fresh(self, tag='t'):
        import cephlab
        return RbdLocation(self.label, self.pool, cephlab.new_namespace(self.pool, tag))

    def close(self):
        pass        # the session stops the lab (conftest.py)


def rbd_root():
    return RbdRoot('rbd', 'rbd')


LVM_DEVICE_ENV = 'BLOCKYARD_LVM_DEVICE'
LVM_THIN_POOL_SIZE = 256 * MIB


def _lvm(argv, what):
    res = _run(argv)
    if res.returncode != 0:
        raise RuntimeError('%s: %s exited with %s: %s' % (what, ' '.join(argv), res.returncode, res.stdout[-2000:]))
    return res.stdout


class LvmLocation(Location):
    """A volume group of its own, made on the spare disk for one test (and
    its thin pool <vg>-pool for lvm_type thin)."""

    kind = 'lvm'

    def __init__(self, label, vg, lvm_type):
        super(LvmLocation, self).__init__(label, dict(backend='lvm', vg=vg, lvm_type=lvm_type), vg)
        self.vg = vg
        self.uuid = _lvm(['vgs', '--noheadings', '-o', 'vg_uuid', vg], 'reading the VG').strip()

    @property
    def location(self):
        return self.vg

    def journal_dir(self):
        from ansible_collections.blockyard.storage.plugins.module_utils.backends.lvm import bookkeeping
        return os.path.join(bookkeeping.STATE_DIR, self.uuid)

    def lvs(self):
        import json
        out = _lvm(['lvs', '-a', '--reportformat', 'json', '--units', 'b', '--nosuffix', '-o',
                    'lv_name,lv_attr,lv_size,origin,pool_lv,lv_tags,data_percent,metadata_percent', self.vg],
                   'listing the LVs')
        rows = []
        for report in json.loads(out)['report']:
            rows.extend(report.get('lv', []))
        return rows

    def listing(self):
        """Every LV of the VG (hidden ones too) with its attributes, size,
        origin, tags, data usage and a sha256 of its data, and the journal
        files."""
        result = {}
        for row in self.lvs():
            name = row['lv_name']
            entry = dict(row)
            # a thin pool commits its metadata on its own clock (about once a
            # second), so its metadata usage may still move after a real run
            entry.pop('metadata_percent', None)
            path = '/dev/%s/%s' % (self.vg, name)
            if not name.startswith('[') and row['lv_attr'][:1] != 't' and os.path.exists(path):
                digest = hashlib.sha256()
                with open(path, 'rb') as handle:
                    for chunk in iter(lambda: handle.read(4 * MIB), b''):
                        digest.update(chunk)
                entry['sha256'] = digest.hexdigest()
            result['lv ' + name] = entry
        journals = self.journal_dir()
        if os.path.isdir(journals):
            result.update(('journal ' + k, v) for k, v in sc.fingerprint(journals).items())
        return result

    def listing_names(self):
        # the thin pool <vg>-pool and its hidden LVs carry the VG's name, which differs per fresh location
        names = ['lv %s' % row['lv_name'].replace(self.vg, '<vg>') for row in self.lvs()]
        journals = self.journal_dir()
        if os.path.isdir(journals):
            names += ['journal %s' % n for n in os.listdir(journals)]
        return names

    def remove(self):
        _run(['vgremove', '-f', '-y', self.vg])
        shutil.rmtree(self.journal_dir(), ignore_errors=True)
        from ansible_collections.blockyard.storage.plugins.module_utils.backends.lvm import bookkeeping
        shutil.rmtree(os.path.join(bookkeeping.LOCK_DIR, self.uuid), ignore_errors=True)


class LvmRoot(object):
    """The spare disk (env BLOCKYARD_LVM_DEVICE); each fresh Location is a
    new VG on it (the previous one is removed first: one PV, one VG)."""

    def __init__(self, label, lvm_type):
        if os.geteuid() != 0:
            raise RuntimeError('%s needs root (LVM)' % label)
        self.device = os.environ.get(LVM_DEVICE_ENV)
        if not self.device:
            raise RuntimeError('%s: set %s to a spare block device (the VM tier\'s /dev/disk/by-id/virtio-bylvm1); '
                               'its contents are destroyed' % (label, LVM_DEVICE_ENV))
        if not os.path.exists(self.device):
            raise RuntimeError('%s: %s=%s does not exist' % (label, LVM_DEVICE_ENV, self.device))
        if not os.path.exists('/dev/mapper/control'):
            raise RuntimeError('%s: no device-mapper in this kernel (/dev/mapper/control): LVM runs in the VM tier '
                               'only' % label)
        self.label = label
        self.lvm_type = lvm_type
        self.current = None
        self._clear_device()

    def _clear_device(self):
        """Remove whatever VG a previous (killed) run left on the device."""
        out = _run(['pvs', '--noheadings', '-o', 'vg_name', self.device]).stdout.strip()
        if out:
            _run(['vgremove', '-f', '-y', out])

    def fresh(self, tag='t'):
        if self.current is not None:
            self.current.remove()
        self._clear_device()
        vg = 'byc%s%s' % (tag, os.urandom(4).hex())
        _lvm(['vgcreate', '-y', '-s', '4m', vg, self.device], 'vgcreate')
        if self.lvm_type == 'thin':
            _lvm(['lvcreate', '-y', '--type', 'thin-pool', '-L', '%db' % LVM_THIN_POOL_SIZE, '-n', '%s-pool' % vg,
                  vg], 'creating the thin pool')
        self.current = LvmLocation(self.label, vg, self.lvm_type)
        return self.current

    def close(self):
        if self.current is not None:
            self.current.remove()
            self.current = None


def lvm_thick_root():
    return LvmRoot('lvm-thick', 'thick')


def lvm_thin_root():
    return LvmRoot('lvm-thin', 'thin')


def remove(loc):
    """Tear down a location a test made (a directory, a VG)."""
    if hasattr(loc, 'remove'):
        loc.remove()
    elif loc.kind == 'file':
        shutil.rmtree(loc.root, ignore_errors=True)


def default_provisioning(loc):
    """What a volume created without provisioning is (lvm: its lvm_type)."""
    return backend_of(loc, 'x').default_provisioning


# kind-location label -> maker of its root
ROOTS = {
    'file-dir': plain_dir_root,
    'file-xfs': xfs_root,
    'file-gluster': gluster_root,
    'rbd': rbd_root,
    'lvm-thick': lvm_thick_root,
    'lvm-thin': lvm_thin_root,
}


def other_format(loc):
    """qcow2 where the location's backend has it, else raw (the copies of
    the suite that change format)."""
    from ansible_collections.blockyard.storage.plugins.module_utils import backends
    return 'qcow2' if 'qcow2' in backends.get(loc.params['backend']).capabilities else 'raw'


# ------------------------------------------------------------------ the neutral API
def vparams(loc, name, **kwargs):
    params = dict(DEFAULTS, **loc.params)
    params.update(name=name, state='present', size=None, format=None, provisioning=None, force=False,
                  source_volume=None, source_snapshot=None, source_image=None, source_image_format=None,
                  source_location=None)
    params.update(kwargs)
    return params


def sparams(loc, volume, name, state='present', **kwargs):
    params = dict(DEFAULTS, **loc.params)
    params.update(volume=volume, name=name, state=state)
    params.update(kwargs)
    return params


def iparams(loc, name=None, **kwargs):
    params = dict(DEFAULTS, **loc.params)
    params.update(name=name, format=None)
    params.update(kwargs)
    return params


def volume(loc, name, check_mode=False, **kwargs):
    return volumes.ensure_volume(vparams(loc, name, **kwargs), check_mode)


def snapshot(loc, vol, snap, state='present', check_mode=False, **kwargs):
    return volumes.ensure_snapshot(sparams(loc, vol, snap, state, **kwargs), check_mode)


def info(loc, name=None, **kwargs):
    return volumes.volume_info(iparams(loc, name, **kwargs))[1]


def backend_of(loc, name, params=None):
    """The contract object of the location holding volume `name`."""
    backend, _notes = volumes.locate(params or vparams(loc, name), name)
    return backend


def data_ref(loc, name, snap=None, params=None):
    backend = backend_of(loc, name, params)
    return backend.data_ref(backend.require(name), snap)


# ------------------------------------------------------------------ data through a DataRef
def qemu_target(ref):
    """(format, what qemu-io opens) for a DataRef."""
    if ref.kind in ('file', 'block'):
        return ref.format, ref.path
    if ref.kind == 'rbd':
        target = 'rbd:%s/%s%s' % (ref.pool, ref.namespace + '/' if ref.namespace else '', ref.image)
        if ref.snapshot:
            target += '@%s' % ref.snapshot
        for key, option in (('conf', 'conf'), ('user', 'id'), ('keyring', 'keyring')):
            if ref.cluster.get(key):
                target += ':%s=%s' % (option, ref.cluster[key])
        return ref.format, target
    raise AssertionError('no qemu-io target for a DataRef of kind %r' % ref.kind)


def write_next(loc, name, timeline, params=None):
    """Write the timeline's next pattern into the volume's active data."""
    fmt, target = qemu_target(data_ref(loc, name, params=params))
    return timeline.write(target, fmt)


def point_problems(loc, name, timeline, point, snap=None, params=None, label=None):
    """Problems of the volume's (or a snapshot's) point in time, read back."""
    ref = data_ref(loc, name, snap, params)
    fmt, target = qemu_target(ref)
    label = label or ('%s@%s' % (name, snap) if snap else name)
    return ['%s: %s' % (label, p) for p in timeline.problems(target, fmt, point)]


def zero_problems(loc, name, offset, length, params=None):
    fmt, target = qemu_target(data_ref(loc, name, params=params))
    return ['%s: %s' % (name, p) for p in sc.pattern_problems(target, fmt, [(0, offset, length)])]


def state_problems(loc, name, timeline, snaps, active_point=None, params=None):
    """snaps: [(snapshot, point)] oldest first: the volume lists exactly
    them, each reads back its point in time, the active data its own."""
    problems = []
    desc = info(loc, name)['volume']
    got = [s['name'] for s in desc['snapshots']]
    if got != [s for s, _p in snaps]:
        problems.append('%s lists snapshots %s, expected %s' % (name, got, [s for s, _p in snaps]))
    for snap, point in snaps:
        problems += point_problems(loc, name, timeline, point, snap, params)
    problems += point_problems(loc, name, timeline, timeline.now if active_point is None else active_point,
                               params=params)
    return problems


def build(loc, name, snaps=0, fmt=None, writes_after=True, size='4M'):
    """A volume with snapshots s1..s<snaps>, a pattern written before each
    (and after the last). Returns (timeline, [(snapshot, point)])."""
    timeline = sc.Timeline()
    changed, _r, _d = volume(loc, name, size=size, format=fmt)
    assert changed
    write_next(loc, name, timeline)
    points = []
    for i in range(1, snaps + 1):
        changed, _r, _d = snapshot(loc, name, 's%d' % i)
        assert changed
        points.append(('s%d' % i, timeline.now))
        if writes_after or i < snaps:
            write_next(loc, name, timeline)
    return timeline, points
