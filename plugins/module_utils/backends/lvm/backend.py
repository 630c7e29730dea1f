# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The `lvm` backend: volumes as logical volumes of one volume group, with
the semantics of Cinder's LVM driver.

- a volume is the LV ``volume-<name>``: thick (``lvcreate -L``, zeroed when
  it is made, so that it never shows what freed extents held) or thin
  (``lvcreate -T -V`` in the thin pool ``<vg>-pool`` or ``thin_pool``);
  ``lvm_type`` picks the kind of new volumes, ``provisioning`` may override
  it per volume;
- a snapshot is ``volsnap-<volume>.<snapshot>`` (``lvcreate -s``: a thick
  one with a copy-on-write area as large as its origin, a thin one activated
  permanently, ``-kn``), tagged ``blockyard-snap-<size>-<ns>``;
- a volume from a snapshot, or a copy of a volume, is a thin snapshot of it
  when both are thin in the same pool; otherwise a new LV that qemu-img
  fills from the snapshot's device, or from the temporary snapshot
  ``volclone-<source>`` of the source volume;
- revert (to the latest snapshot): ``lvconvert --merge`` of a thick
  snapshot, which then is made again (as Cinder does; a snapshot whose
  copy-on-write area is empty has nothing to merge: a re-run changes
  nothing); a thin snapshot's data is copied back (when it differs);
- extend is ``lvextend`` (a thick origin with snapshots is resized inactive,
  as LVM requires, and its snapshots' copy-on-write areas grow with it);
  the new range of a thick volume is zeroed;
- delete removes the snapshots, then the volume; with ``volume_clear:
  zero`` a thick volume and a thick snapshot's ``-cow`` device are zeroed
  first (the first ``volume_clear_size`` MiB, 0 = all; OSSA-2013-021).

Operations of several steps write a journal on the host first
(bookkeeping.HostFiles: ``/var/lib/blockyard/lvm/<vg uuid>/``), and the next
run completes (deletes, extends, reverts, snapshot deletes) or undoes
(creates, copies) what a crash interrupted. Locks are local lock files
(``/run/lock/blockyard/lvm/<vg uuid>/``): a VG shared between hosts
(lvmlockd) is not supported."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import stat
import time

from ansible_collections.blockyard.storage.plugins.module_utils import fileio, locks, naming, qemu_img, runner
from ansible_collections.blockyard.storage.plugins.module_utils.backends.base import Backend
from ansible_collections.blockyard.storage.plugins.module_utils.backends.lvm import bookkeeping as bk
from ansible_collections.blockyard.storage.plugins.module_utils.errors import (
    Busy, CommandFailed, Conflict, InvalidInput, NotFound, StorageError)
from ansible_collections.blockyard.storage.plugins.module_utils.model import Capacity, DataRef, Snapshot, Source, Volume
from ansible_collections.blockyard.storage.plugins.module_utils.plan import Plan
from ansible_collections.blockyard.storage.plugins.module_utils.runner import checkpoint

LVM_TYPES = ('thick', 'thin')
CLEAR_MODES = ('none', 'zero')
DEFAULT_CLEAR = 'none'
MIB = 1024 * 1024
COMPARE_BLOCK = 4 * MIB
ZERO_BLOCK = 4 * MIB
VG_HINT = ('create it (vgcreate <vg> <device>, or the role lvm_volume_group), or set vg to an existing volume group '
           '(vgs lists them)')


def _round_up(value, unit):
    return (value + unit - 1) // unit * unit


def cow_size(size, extent):
    """A thick snapshot's copy-on-write area: the whole origin plus the
    exception store's metadata (16 bytes per 4 KiB chunk), as Cinder sizes
    it; lvcreate caps it at what the origin can use."""
    return _round_up(size + size // 128 + extent, extent)


def check_options(params):
    """(vg, lvm_type, thin_pool, volume_clear, volume_clear_size), checked."""
    for key in ('volume_dir', 'share', 'shares', 'shares_config'):
        if params.get(key):
            raise InvalidInput('%s is an option of the file backend; backend lvm keeps volumes as logical volumes of '
                               'the volume group vg.' % key)
    for key in ('owner', 'group', 'mode'):
        if params.get(key) is not None:
            raise InvalidInput('%s applies to files (backend file); logical volumes are device nodes that udev '
                               'owns: leave it out.' % key)
    if params.get('namespace'):
        raise InvalidInput('namespace is an option of the rbd backend; backend lvm has none: leave it out.')
    vg = params.get('vg')
    if not vg:
        raise InvalidInput('backend lvm needs vg: the volume group that holds the volumes (vgs lists them).')
    bk.check_lvm_name(vg, 'volume group', 'vg', lv=False)
    lvm_type = params.get('lvm_type') or 'thick'
    if lvm_type not in LVM_TYPES:
        raise InvalidInput('lvm_type %r is not one of %s.' % (lvm_type, ', '.join(LVM_TYPES)))
    pool = params.get('thin_pool') or '%s-pool' % vg
    bk.check_lvm_name(pool, 'thin pool', 'thin_pool')
    clear = params.get('volume_clear') or DEFAULT_CLEAR
    if clear not in CLEAR_MODES:
        raise InvalidInput('volume_clear %r is not one of %s.' % (clear, ', '.join(CLEAR_MODES)))
    clear_size = params.get('volume_clear_size') or 0
    if isinstance(clear_size, bool) or not isinstance(clear_size, int) or clear_size < 0 or \
            clear_size > naming.MAX_SIZE // MIB:
        raise InvalidInput('volume_clear_size %r must be a number of MiB, 0 (the whole volume) or more.'
                           % (clear_size,))
    return vg, lvm_type, pool, clear, clear_size


def vg_info(vg):
    """The vgs row of vg; NotFound naming the command and the fix."""
    res = runner.run(['vgs'] + bk.REPORT_OPTIONS + ['-o', ','.join(bk.VG_FIELDS), vg], check=False,
                     what='Reading volume group %s' % vg)
    if res.rc != 0:
        text = (res.stderr or '').strip()
        if 'not found' in text or 'No such' in text or res.rc == 5:
            raise NotFound('Volume group %s does not exist on this host (vgs %s: %s): %s.'
                           % (vg, vg, text.splitlines()[-1] if text else 'rc %s' % res.rc, VG_HINT),
                           cmd=res.cmd, rc=res.rc, stderr=res.stderr)
        raise CommandFailed('Reading volume group %s: vgs exited with %s: %s. Check that LVM works on this host '
                            '(lvm2 installed, device-mapper in the kernel, run as root).' % (vg, res.rc, text),
                            cmd=res.cmd, rc=res.rc, stderr=res.stderr)
    rows = [r for r in bk.parse_vgs(res.stdout) if r['name'] == vg]
    if len(rows) != 1:
        raise NotFound('vgs %s reported no volume group %s: %s.' % (vg, vg, VG_HINT))
    return rows[0]


class LvmBackend(Backend):
    """Volumes as logical volumes of one volume group."""
    kind = 'lvm'
    capabilities = frozenset(['thick', 'revert_latest', 'clear_on_delete'])
    package = 'lvm2 (and thin-provisioning-tools for thin volumes)'
    # one VG per task: no placement limits unless the operator sets them
    unlimited_by_default = True
    state_dir = None
    lock_dir = None

    def __init__(self, vg, info, lvm_type='thick', thin_pool=None, volume_clear=DEFAULT_CLEAR, volume_clear_size=0):
        self.vg = vg
        self.vg_uuid = info['uuid']
        self.extent = info['extent_size'] or 4 * MIB
        self.lvm_type = lvm_type
        self.pool = thin_pool or '%s-pool' % vg
        self.volume_clear = volume_clear
        self.volume_clear_size = volume_clear_size
        self.files = bk.HostFiles(vg, self.vg_uuid, self.state_dir, self.lock_dir)
        self.warnings = []
        self._cache = {'vg': info}

    # ------------------------------------------------------------------ locations
    @classmethod
    def locations(cls, params):
        vg, lvm_type, pool, clear, clear_size = check_options(params)
        return [cls(vg, vg_info(vg), lvm_type, pool, clear, clear_size)], []

    @property
    def location(self):
        return self.vg

    @property
    def default_provisioning(self):
        return self.lvm_type

    def lock_key(self, name):
        return (self.kind, self.vg_uuid, name)

    def lock(self, name):
        self.files.ensure_lock_dir()
        return locks.file_lock(self.files.lock_path(name), what='volume %s in VG %s' % (name, self.vg))

    def check_lock(self, name):
        path = self.files.lock_path(name)
        if os.path.lexists(path):
            fileio.lstat_regular(path)

    # ------------------------------------------------------------------ names
    def validate_name(self, name, what='volume'):
        naming.validate_name(name, what)
        bk.check_lv_name_fits(self.vg, bk.snapshot_lv(name, 'x') if what == 'volume' else bk.volume_lv(name),
                              '%s name %s' % (what, name))
        return name

    def validate_snapshot_name(self, name):
        naming.validate_snapshot_name(name)
        bk.check_lv_name_fits(self.vg, bk.snapshot_lv('v', name), 'snapshot name %s' % name)
        return name

    def _check_pair(self, volume, snapshot):
        bk.check_lv_name_fits(self.vg, bk.snapshot_lv(volume, snapshot), 'snapshot %s of volume %s'
                              % (snapshot, volume))

    # ------------------------------------------------------------------ commands
    def _run(self, args, what, **kwargs):
        # any command but a report may change what lvs/vgs say (a write
        # changes a thin LV's or a snapshot's usage): read them again after it
        if args[0] not in ('lvs', 'vgs'):
            self._cache.clear()
        return runner.run(args, what=what, **kwargs)

    def _vg(self):
        if 'vg' not in self._cache:
            self._cache['vg'] = vg_info(self.vg)
        return self._cache['vg']

    def _spec(self, lv):
        return '%s/%s' % (self.vg, lv)

    def path(self, lv):
        return '/dev/%s/%s' % (self.vg, lv)

    def contents(self):
        """What the VG holds (one lvs, kept until this backend runs any other
        command: a backend object lives for one task)."""
        if 'lvs' not in self._cache:
            self._cache['lvs'] = self._read_contents()
        return self._cache['lvs']

    def _read_contents(self):
        res = self._run(['lvs'] + bk.REPORT_OPTIONS + ['-o', ','.join(bk.LV_FIELDS), self.vg],
                        'Listing the logical volumes of VG %s' % self.vg, check=False)
        if res.rc != 0:
            vg_info(self.vg)    # a VG that went away says so
            raise CommandFailed('Listing the logical volumes of VG %s: lvs exited with %s: %s'
                                % (self.vg, res.rc, res.stderr.strip()), cmd=res.cmd, rc=res.rc, stderr=res.stderr)
        return bk.Contents(bk.parse_lvs(res.stdout))

    def _pool_lv(self, contents):
        lv = contents.all.get(self.pool)
        return lv if lv is not None and lv.thin_pool else None

    def _require_pool(self, contents, doing):
        lv = contents.all.get(self.pool)
        if lv is None:
            raise NotFound('Cannot %s: the thin pool %s does not exist in VG %s. Create it (lvcreate --type '
                           'thin-pool -L <size> -n %s %s, or the role lvm_volume_group), or set thin_pool to an '
                           'existing one, or use lvm_type=thick.' % (doing, self.pool, self.vg, self.pool, self.vg),
                           vg=self.vg, thin_pool=self.pool)
        if not lv.thin_pool:
            raise InvalidInput('Cannot %s: %s/%s is not a thin pool (segment type %s): set thin_pool to a thin pool '
                               'of VG %s.' % (doing, self.vg, self.pool, lv.segtype or lv.attr, self.vg))
        for label, value in (('data', lv.data_percent), ('metadata', lv.metadata_percent)):
            if value is not None and value >= 100.0:
                raise Conflict('Cannot %s: the thin pool %s/%s is full (%s %.2f%% used): writes to its volumes fail '
                               'or queue. Extend it (lvextend -L +<size> %s/%s%s), or delete volumes or snapshots in '
                               'it, then re-run.'
                               % (doing, self.vg, self.pool, label, value, self.vg, self.pool,
                                  ' --poolmetadatasize' if label == 'metadata' else ''),
                               vg=self.vg, thin_pool=self.pool, data_percent=lv.data_percent,
                               metadata_percent=lv.metadata_percent)
        return lv

    def _require_free(self, need, doing):
        info = self._vg()
        if info['free'] < need:
            raise Conflict('Cannot %s: VG %s has %s free, %s are needed. Add a physical volume (vgextend %s '
                           '<device>) or free space, then re-run.'
                           % (doing, self.vg, naming.human_size(info['free']), naming.human_size(need), self.vg),
                           vg=self.vg, free_bytes=info['free'], needed_bytes=need)

    def _lvcreate(self, args, what):
        self._run(['lvcreate', '--yes'] + args, what)

    def _create_lv(self, lv, size, provisioning):
        if provisioning == 'thin':
            self._lvcreate(['--type', 'thin', '-V', '%db' % size, '--thinpool', self.pool, '-n', lv, self.vg],
                           'Creating thin LV %s in pool %s/%s' % (lv, self.vg, self.pool))
        else:
            self._lvcreate(['-L', '%db' % size, '-n', lv, self.vg], 'Creating LV %s/%s' % (self.vg, lv))

    def _snapshot(self, origin, lv, size, thin, tag):
        args = ['-s', '-n', lv, '--addtag', tag]
        if thin:
            args += ['-kn']
        else:
            args += ['-L', '%db' % cow_size(size, self.extent)]
        self._lvcreate(args + [self._spec(origin)], 'Creating snapshot %s of %s/%s' % (lv, self.vg, origin))

    def _lvextend(self, lv, size):
        self._run(['lvextend', '-L', '%db' % size, self._spec(lv)], 'Extending LV %s/%s' % (self.vg, lv))

    def _activate(self, lv, on=True):
        self._run(['lvchange', '-ay' if on else '-an', self._spec(lv)],
                  '%s LV %s/%s' % ('Activating' if on else 'Deactivating', self.vg, lv))

    def _device(self, path):
        """A block device of ours: /dev/<vg>/<lv> resolves to a device-mapper
        node (udev's link), never a regular file or another kind."""
        real = os.path.realpath(path)
        try:
            st = os.stat(real)
        except OSError as exc:
            raise fileio.os_error(exc, 'Opening the device', path)
        if not stat.S_ISBLK(st.st_mode) or not real.startswith('/dev/'):
            raise StorageError('%s resolves to %s, which is not a block device under /dev: refusing to write to it. '
                               'Inspect the LV and its device node.' % (path, real), path=path)
        return real

    def _zero(self, path, offset, length):
        """Write zeros over [offset, offset + length) of a device, then flush
        it. Written here, not by blkdiscard -z, which opens the device
        exclusively: a thick snapshot's -cow device is held by the snapshot."""
        if length <= 0:
            return
        real = self._device(path)
        self._cache.clear()
        try:
            fd = os.open(real, os.O_WRONLY | getattr(os, 'O_CLOEXEC', 0))
        except OSError as exc:
            raise fileio.os_error(exc, 'Opening %s to zero it' % path, path)
        try:
            zeros = bytes(ZERO_BLOCK)
            end = offset + length
            while offset < end:
                count = min(ZERO_BLOCK, end - offset)
                written = os.pwrite(fd, zeros[:count] if count < ZERO_BLOCK else zeros, offset)
                if written <= 0:
                    raise OSError(5, 'short write')
                offset += written
            os.fsync(fd)
        except OSError as exc:
            raise fileio.os_error(exc, 'Zeroing %s' % path, path)
        finally:
            os.close(fd)

    def _clear_length(self, size):
        if self.volume_clear_size:
            return min(size, self.volume_clear_size * MIB)
        return size

    def _remove_lv(self, lv, contents=None):
        """Remove one of our LVs, zeroed first when volume_clear is zero
        (a thick volume, or the -cow device of a thick snapshot)."""
        if self.volume_clear == 'zero' and lv is not None and not lv.thin:
            if lv.thick_snapshot:
                cow = '/dev/mapper/%s' % bk.dm_name(self.vg, lv.name, '-cow')
                if not os.path.exists(cow):
                    self._activate(lv.origin)
                self._zero(cow, 0, self._clear_length(self._size_of_device(cow)))
            else:
                if not lv.active:
                    self._activate(lv.name)
                self._zero(self.path(lv.name), 0, self._clear_length(lv.size))
        self._run(['lvremove', '-f', self._spec(lv.name)], 'Removing LV %s/%s' % (self.vg, lv.name))

    def _size_of_device(self, path):
        fd = os.open(self._device(path), os.O_RDONLY)
        try:
            return os.lseek(fd, 0, os.SEEK_END)
        finally:
            os.close(fd)

    # ------------------------------------------------------------------ reading
    def exists(self, name):
        return name in self.contents().volumes

    def pending(self, name):
        try:
            return self.files.read(name)
        except StorageError as exc:
            return {'op': None, 'error': exc.msg}

    def list_names(self):
        return sorted(self.contents().volumes)

    def _snap_size(self, lv, origin_size):
        record = lv.snap_record()
        if record is not None:
            return record[0]
        return lv.size if lv.thin else origin_size

    def _model(self, contents, name, pending=None):
        lv = contents.volumes[name]
        snapshots = []
        for snap, slv in contents.snapshots_of(name):
            size = self._snap_size(slv, lv.size)
            snapshots.append(Snapshot(snap, name, size, dependent=False,
                                      pending=bool(pending and pending.get('snapshot') == snap), details={
                                          'lv': slv.name, 'path': self.path(slv.name), 'thin': slv.thin,
                                          'cow_bytes': None if slv.thin else slv.size,
                                          'data_percent': slv.data_percent,
                                          'merging': slv.merging}))
        thin = lv.thin
        allocated = int(lv.size * (lv.data_percent or 0) / 100) if thin else lv.size
        details = {'vg': self.vg, 'lv': lv.name, 'path': self.path(lv.name), 'lv_uuid': lv.uuid,
                   'segtype': lv.segtype, 'pool': lv.pool or None, 'active': lv.active, 'open': lv.open,
                   'origin': lv.origin or None}
        return Volume(name, self.kind, self.location, lv.size, 'thin' if thin else 'thick', 'raw',
                      allocated=allocated, managed=True, snapshots=snapshots,
                      active=DataRef('block', 'raw', lv.size, path=self.path(lv.name)), pending=pending,
                      details=details, handle=contents)

    def load(self, name, fmt=None, size=None):
        contents = self.contents()
        if name not in contents.volumes:
            return None
        return self._model(contents, name, self.pending(name))

    def snapshot_details(self, volume, snapshot):
        return dict(snapshot.details, vg=self.vg)

    def capacity(self, known=None, volumes=True):
        info = self._vg()
        details = {'vg': self.vg, 'vg_size_bytes': info['size'], 'vg_free_bytes': info['free'],
                   'extent_size_bytes': self.extent, 'lvm_type': self.lvm_type}
        total, free = info['size'], info['free']
        contents = self.contents()
        if self.lvm_type == 'thin':
            pool = self._pool_lv(contents)
            details.update(thin_pool=self.pool, thin_pool_exists=pool is not None)
            if pool is not None:
                used = int(pool.size * (pool.data_percent or 0) / 100)
                total, free = pool.size, pool.size - used
                details.update(data_percent=pool.data_percent, metadata_percent=pool.metadata_percent)
        result = Capacity(self.location, total, free, total - free, details=details)
        if not volumes:
            return result

        def size_of(name):
            lv = contents.volumes.get(name)
            return lv.size if lv is not None else None
        result.provisioned = self.provisioned(known, size_of)
        result.allocated = total - free
        return result

    # ------------------------------------------------------------------ data
    def _ref(self, lv, size):
        return DataRef('block', 'raw', size, path=self.path(lv))

    def _snapshot_lv(self, contents, name, snapshot):
        snaps = dict(contents.snapshots_of(name))
        if snapshot not in snaps:
            raise NotFound('Snapshot %s of volume %s does not exist in VG %s: choose one of %s.'
                           % (snapshot, name, self.vg, ', '.join(s for s, _l in contents.snapshots_of(name))
                              or 'none (it has no snapshots)'))
        return snaps[snapshot]

    def data_ref(self, volume, snapshot=None):
        contents = volume.handle
        lv = contents.volumes[volume.name]
        if snapshot is None:
            return self._ref(lv.name, lv.size)
        slv = self._snapshot_lv(contents, volume.name, snapshot)
        return self._ref(slv.name, self._snap_size(slv, lv.size))

    def plan_read(self, volume, snapshot=None, purpose=None):
        """A snapshot's device as it is; the current data frozen by the
        temporary snapshot volclone-<volume> that the release step removes."""
        contents = volume.handle
        lv = contents.volumes[volume.name]
        if snapshot is not None:
            slv = self._snapshot_lv(contents, volume.name, snapshot)
            size = self._snap_size(slv, lv.size)
            return Source(self._ref(slv.name, size), size, 'snapshot %s of volume %s (%s)'
                          % (snapshot, volume.name, self.path(slv.name)), backend=self, volume=volume,
                          snapshot=snapshot)
        tmp = bk.clone_lv(volume.name)
        if tmp in contents.all:
            raise Conflict('Volume %s already has the temporary snapshot %s: a copy of it is in progress or was '
                           'interrupted. Re-run after it ends.' % (volume.name, self._spec(tmp)))
        bk.check_lv_name_fits(self.vg, tmp, 'temporary snapshot of volume %s' % volume.name)
        prepare, release = Plan('lvm_read_prepare'), Plan('lvm_read_release')
        prepare.on_failure(self._drop_clone, volume.name, last=True)
        prepare.add('', self.files.write, volume.name, {'op': 'clone'})
        prepare.add('create temporary snapshot %s of %s' % (self._spec(tmp), self._spec(lv.name)),
                    self._snapshot, lv.name, tmp, lv.size, lv.thin, bk.snap_tag(lv.size, time.time_ns()))
        release.add('remove temporary snapshot %s' % self._spec(tmp), self._drop_clone, volume.name)
        return Source(self._ref(tmp, lv.size), lv.size, 'the point in time of %s (snapshot %s)'
                      % (self._spec(lv.name), tmp), prepare, release, backend=self, volume=volume)

    def _drop_clone(self, name):
        tmp = self.contents().all.get(bk.clone_lv(name))
        if tmp is not None:
            self._remove_lv(tmp)
        journal = self.files.read(name)
        if journal and journal.get('op') == 'clone':
            self.files.clear(name)

    def can_clone_from(self, other, volume, snapshot, fmt, provisioning):
        """A thin snapshot: raw and thin, from a thin LV of the same pool of
        the same VG."""
        if other.kind != self.kind or fmt != 'raw' or provisioning != 'thin' or other.vg_uuid != self.vg_uuid:
            return False
        contents = volume.handle
        lv = contents.volumes.get(volume.name)
        if snapshot is not None:
            lv = dict(contents.snapshots_of(volume.name)).get(snapshot)
        return lv is not None and lv.thin and lv.pool == self.pool

    # ------------------------------------------------------------------ recovery
    def recover(self, name, check_mode=False, discard_invalid=False):
        return self.recover_journal(self.files, bk.InvalidJournal, bk.OPERATIONS, name, check_mode, discard_invalid,
                                    'journal %s' % self.files.journal_path(name), undone=('create', 'clone'))

    def _recover_create(self, name, journal):
        contents = self.contents()
        lv = contents.volumes.get(name)
        if lv is None:
            return
        if contents.snapshots.get(name):
            raise Conflict('LV %s has snapshots although its create was not completed: it was changed by another '
                           'tool. Inspect it.' % self._spec(lv.name))
        self._remove_lv(lv)

    def _recover_clone(self, name, journal):
        tmp = self.contents().all.get(bk.clone_lv(name))
        if tmp is not None:
            self._remove_lv(tmp)

    def _recover_extend(self, name, journal):
        self._extend(name, journal['from'], journal['size'])

    def _recover_delete(self, name, journal):
        self._delete(name)

    def _recover_snapshot_delete(self, name, journal):
        self._remove_snapshot(name, journal['snapshot'])

    def _recover_revert(self, name, journal):
        self._revert(name, journal['snapshot'], journal['size'], journal['time'])

    def _undo_create(self, name):
        journal = self.files.read(name)
        if journal and journal.get('op') == 'create':
            self._recover_create(name, journal)
            self.files.clear(name)

    # ------------------------------------------------------------------ volumes
    def _check_kind(self, fmt, provisioning):
        if fmt not in (None, 'raw'):
            self.require_capability('qcow2', 'A %s volume' % fmt)
        if provisioning not in (None, 'thin', 'thick'):
            raise InvalidInput('provisioning %r is not thin or thick.' % (provisioning,))

    def _predicted(self, name, size, provisioning):
        return Volume(name, self.kind, self.location, size, provisioning, 'raw', managed=True,
                      allocated=size if provisioning == 'thick' else 0,
                      details={'vg': self.vg, 'lv': bk.volume_lv(name), 'path': self.path(bk.volume_lv(name)),
                               'predicted': True})

    def plan_create(self, name, fmt, size, provisioning, source=None):
        provisioning = provisioning or self.lvm_type
        self._check_kind(fmt, provisioning)
        self.validate_name(name)
        if source is None and size is None:
            raise InvalidInput('Volume %s does not exist and no size was given: give size to create it.' % name)
        final = _round_up(size if size is not None else source.size, self.extent)
        if source is not None and (size if size is not None else final) < source.size:
            raise Conflict('Volume %s would be %s but its source is %s: a copy cannot be smaller than its source. '
                           'Give size >= %s or leave it out.'
                           % (name, naming.human_size(final), naming.human_size(source.size),
                              naming.human_size(_round_up(source.size, self.extent))))
        contents = self.contents()
        lv = bk.volume_lv(name)
        if lv in contents.all:
            raise Conflict('Cannot create volume %s: LV %s exists in VG %s.' % (name, self._spec(lv), self.vg))
        if provisioning == 'thin':
            self._require_pool(contents, 'create thin volume %s' % name)
        else:
            self._require_free(final, 'create thick volume %s of %s' % (name, naming.human_size(final)))
        plan = Plan('volume_present')
        plan.on_failure(self._undo_create, name)
        plan.add('', self.files.write, name, {'op': 'create'})
        if source is not None and source.backend is not None and \
                self.can_clone_from(source.backend, source.volume, source.snapshot, 'raw', provisioning):
            src_contents = source.volume.handle
            origin = src_contents.volumes[source.volume.name]
            if source.snapshot is not None:
                origin = dict(src_contents.snapshots_of(source.volume.name))[source.snapshot]
            plan.add('create %s as a thin snapshot of %s (activated permanently)'
                     % (self._spec(lv), self._spec(origin.name)),
                     self._thin_copy, origin.name, lv)
            if final > origin.size:
                plan.add('extend %s to %s' % (self._spec(lv), naming.human_size(final)), self._lvextend, lv, final)
        else:
            plan.add('create %s LV %s of %s' % (provisioning, self._spec(lv), naming.human_size(final)),
                     self._create_lv, lv, final, provisioning)
            if source is None:
                if provisioning == 'thick':
                    plan.add('zero %s (its extents may hold data of a deleted volume)' % self._spec(lv),
                             self._zero, self.path(lv), 0, final)
            else:
                if source.prepare is not None:
                    plan.extend(source.prepare)
                plan.add('copy %s into %s' % (source.description, self._spec(lv)), self._copy, source.ref, lv,
                         final, provisioning)
                if source.release is not None:
                    plan.extend(source.release)
        plan.add('', self.files.clear, name)
        plan.after = self._predicted(name, final, provisioning)
        return plan, None

    def _thin_copy(self, origin, lv):
        self._lvcreate(['-s', '-kn', '-n', lv, self._spec(origin)],
                       'Creating thin snapshot %s of %s' % (self._spec(lv), self._spec(origin)))

    def _copy(self, ref, lv, size, provisioning):
        """Copy ref into the new LV: a thin one reads as zeros, a thick one
        gets every byte written (qemu-img writes the zeros too)."""
        dest = self._ref(lv, size)
        self._device(dest.path)
        thick = provisioning == 'thick'
        self._cache.clear()
        qemu_img.convert_to(ref, dest, target_is_zero=not thick)
        if thick and ref.size is not None and ref.size < size:
            self._zero(dest.path, _round_up(ref.size, 512), size - _round_up(ref.size, 512))

    def plan_update(self, volume, fmt=None, size=None, provisioning=None):
        contents = volume.handle
        lv = contents.volumes[volume.name]
        plan = Plan('volume_present')
        if fmt not in (None, 'raw'):
            raise Conflict('Volume %s is a raw logical volume (%s), not %s: a volume\'s format cannot be changed in '
                           'place.' % (volume.name, self._spec(lv.name), fmt))
        if provisioning not in (None, volume.provisioning):
            plan.warnings.append('Volume %s is a %s logical volume; provisioning=%s is ignored for an existing '
                                 'volume.' % (volume.name, volume.provisioning, provisioning))
        after = self._model(contents, volume.name)
        plan.after = after
        if size is None:
            return plan, volume
        want = _round_up(size, self.extent)
        if want < lv.size:
            raise Conflict('Volume %s is %d bytes (%s); refusing to shrink it to %d bytes (%s): shrinking loses '
                           'data. Give size >= %s.' % (volume.name, lv.size, naming.human_size(lv.size), size,
                                                       naming.human_size(size), naming.human_size(lv.size)))
        if want == lv.size:
            return plan, volume
        snaps = contents.snapshots_of(volume.name)
        thick_snaps = [s for s, slv in snaps if slv.thick_snapshot]
        if thick_snaps or not lv.thin:
            if lv.open and thick_snaps:
                raise Busy('Cannot extend volume %s: %s is open (a guest, a target or a mount uses it) and LVM '
                           'resizes a thick origin with snapshots (%s) only while inactive. Detach it, or delete the '
                           'snapshots, first. Nothing was changed.'
                           % (volume.name, self._spec(lv.name), ', '.join(thick_snaps)), volume=volume.name)
            self._require_free(want - lv.size + sum(cow_size(want, self.extent) - slv.size for s, slv in snaps
                                                    if slv.thick_snapshot and cow_size(want, self.extent) > slv.size),
                               'extend volume %s' % volume.name)
        else:
            self._require_pool(contents, 'extend thin volume %s' % volume.name)
        plan.add('', self.files.write, volume.name, {'op': 'extend', 'from': lv.size, 'size': want})
        text = 'extend volume %s from %s to %s (lvextend %s)' % (
            volume.name, naming.human_size(lv.size), naming.human_size(want), self._spec(lv.name))
        if thick_snaps:
            text += ', inactive, with the copy-on-write areas of its snapshots %s' % ', '.join(thick_snaps)
        if not lv.thin:
            text += ', and zero the new range'
        plan.add(text, self._extend, volume.name, lv.size, want)
        plan.add('', self.files.clear, volume.name)
        after.size = want
        if after.provisioning == 'thick':
            after.allocated = want
        after.active = self._ref(lv.name, want)
        return plan, volume

    def _extend(self, name, start, size):
        """Grow volume name to size, then zero [start, size) of a thick one
        (also what a crash recovery completes)."""
        contents = self.contents()
        lv = contents.volumes.get(name)
        if lv is None:
            raise NotFound('Volume %s disappeared from VG %s during its extension.' % (name, self.vg))
        snaps = [slv for _s, slv in contents.snapshots_of(name) if slv.thick_snapshot]
        if lv.size < size:
            if snaps:
                self._activate(lv.name, False)
                for slv in snaps:
                    want = cow_size(size, self.extent)
                    if slv.size < want:
                        self._lvextend(slv.name, want)
            checkpoint('lvm.extending')
            self._lvextend(lv.name, size)
        checkpoint('lvm.extended')
        if not lv.active or snaps:
            self._activate(lv.name)
        if not lv.thin:
            self._zero(self.path(lv.name), start, size - start)

    def plan_delete(self, name, force=False):
        plan = Plan('volume_absent')
        contents = self.contents()
        lv = contents.volumes.get(name)
        if lv is None:
            return plan, None
        snaps = contents.snapshots_of(name)
        if snaps and not force:
            raise Conflict('Volume %s has snapshots (%s): deleting it deletes them too. Delete the snapshots first, '
                           'or set force=true.' % (name, ', '.join(s for s, _l in snaps)))
        foreign = sorted(o.name for o in contents.all.values()
                         if o.origin == lv.name and o.thick_snapshot and o.name not in
                         set([slv.name for _s, slv in snaps] + [bk.clone_lv(name)]))
        if foreign:
            raise Conflict('Volume %s (%s) has snapshots that this collection did not make (%s): removing it would '
                           'remove them. Remove them by hand (lvremove) if they are no longer needed.'
                           % (name, self._spec(lv.name), ', '.join(foreign)))
        opened = [x.name for x in [lv] + [slv for _s, slv in snaps] if x.open]
        if opened:
            raise Busy('Cannot delete volume %s: %s %s open (a guest, a target or a mount uses it): detach it first. '
                       'Nothing was changed.' % (name, ', '.join(opened), 'is' if len(opened) == 1 else 'are'),
                       volume=name)
        zero = self.volume_clear == 'zero'
        plan.add('', self.files.write, name, {'op': 'delete'})
        for snap, slv in snaps:
            plan.add('%sdelete snapshot %s of volume %s (%s)'
                     % ('zero the copy-on-write area of, then ' if zero and not slv.thin else '', snap, name,
                        self._spec(slv.name)))
        plan.add('%sremove LV %s' % ('zero, then ' if zero and not lv.thin else '', self._spec(lv.name)))
        # the texts above describe what _delete does (also what a crash recovery completes)
        plan.add('', self._delete, name)
        plan.add('', self.files.clear, name)
        return plan, self._model(contents, name)

    def _delete(self, name):
        contents = self.contents()
        tmp = contents.clones.get(name)
        if tmp is not None:
            self._remove_lv(tmp)
        for _snap, slv in contents.snapshots_of(name):
            self._remove_lv(slv)
            checkpoint('lvm.snapshot_removed')
        lv = contents.volumes.get(name)
        if lv is not None:
            self._remove_lv(lv)

    # ------------------------------------------------------------------ snapshots
    def _require_contents(self, name):
        contents = self.contents()
        if name not in contents.volumes:
            raise NotFound('Volume %s does not exist in VG %s: create it first (blockyard.storage.volume).'
                           % (name, self.vg))
        return contents

    def _predict(self, contents, name, snapshots, new=None):
        after = self._model(contents, name)
        known = dict((s.name, s) for s in after.snapshots)
        lv = contents.volumes[name]
        after.snapshots = [known.get(s) or Snapshot(s, name, lv.size, details={
            'lv': bk.snapshot_lv(name, s), 'path': self.path(bk.snapshot_lv(name, s)), 'thin': lv.thin,
            'cow_bytes': None if lv.thin else cow_size(lv.size, self.extent), 'data_percent': 0.0,
            'merging': False}) for s in snapshots]
        return after

    def plan_snapshot_create(self, name, snapshot):
        contents = self._require_contents(name)
        before = self._model(contents, name)
        plan = Plan('snapshot_present')
        names = [s for s, _l in contents.snapshots_of(name)]
        if snapshot in names:
            plan.after = before
            return plan, before
        self._check_pair(name, snapshot)
        lv = contents.volumes[name]
        snap_lv = bk.snapshot_lv(name, snapshot)
        if snap_lv in contents.all:
            raise Conflict('Cannot create snapshot %s of volume %s: LV %s exists.'
                           % (snapshot, name, self._spec(snap_lv)))
        doing = 'create snapshot %s of volume %s' % (snapshot, name)
        if lv.thin:
            self._require_pool(contents, doing)
        else:
            self._require_free(cow_size(lv.size, self.extent), doing)
        plan.add('create %s snapshot %s of volume %s (%s)' % ('thin' if lv.thin else 'thick', snapshot, name,
                                                              self._spec(snap_lv)),
                 self._make_snapshot, name, snapshot, lv.size, None)
        plan.after = self._predict(contents, name, names + [snapshot])
        return plan, before

    def _make_snapshot(self, name, snapshot, size, ns):
        contents = self.contents()
        lv = contents.volumes[name]
        self._snapshot(lv.name, bk.snapshot_lv(name, snapshot), lv.size, lv.thin,
                       bk.snap_tag(size, time.time_ns() if ns is None else ns))

    def plan_snapshot_delete(self, name, snapshot):
        contents = self._require_contents(name)
        before = self._model(contents, name)
        plan = Plan('snapshot_absent')
        snaps = dict(contents.snapshots_of(name))
        if snapshot not in snaps:
            plan.after = before
            return plan, before
        slv = snaps[snapshot]
        if slv.open:
            raise Busy('Cannot delete snapshot %s of volume %s: %s is open (a copy or a target reads it). Nothing '
                       'was changed.' % (snapshot, name, self._spec(slv.name)), volume=name)
        zero = self.volume_clear == 'zero' and not slv.thin
        if zero:
            plan.add('', self.files.write, name, {'op': 'snapshot_delete', 'snapshot': snapshot})
        plan.add('%sdelete snapshot %s of volume %s (%s)' % ('zero the copy-on-write area of, then ' if zero else '',
                                                             snapshot, name, self._spec(slv.name)),
                 self._remove_snapshot, name, snapshot)
        if zero:
            plan.add('', self.files.clear, name)
        plan.after = self._predict(contents, name, [s for s, _l in contents.snapshots_of(name) if s != snapshot])
        return plan, before

    def _remove_snapshot(self, name, snapshot):
        slv = self.contents().all.get(bk.snapshot_lv(name, snapshot))
        if slv is not None:
            self._remove_lv(slv)

    def plan_revert(self, name, snapshot):
        self.require_capability('revert_latest', 'Reverting a volume to a snapshot')
        contents = self._require_contents(name)
        before = self._model(contents, name)
        plan = Plan('snapshot_reverted')
        plan.after = before
        snaps = contents.snapshots_of(name)
        slv = self._snapshot_lv(contents, name, snapshot)
        if snaps[-1][0] != snapshot:
            raise Conflict('Snapshot %s is not the latest snapshot of volume %s (%s is): only the latest can be '
                           'reverted to. Delete the newer snapshots first.' % (snapshot, name, snaps[-1][0]))
        lv = contents.volumes[name]
        size = self._snap_size(slv, lv.size)
        if slv.thick_snapshot and (slv.attr[4:5] == 'I' or (slv.data_percent or 0) >= 100.0):
            raise Conflict('Snapshot %s of volume %s (%s) is invalid: its copy-on-write area overflowed, it no '
                           'longer holds its point in time. Delete it.' % (snapshot, name, self._spec(slv.name)))
        if not self._written_since(lv, slv, size):
            return plan, before
        if lv.open:
            raise Busy('Cannot revert volume %s to snapshot %s: %s is open (a guest, a target or a mount uses it); '
                       'detach it first. Nothing was changed.' % (name, snapshot, self._spec(lv.name)), volume=name)
        record = slv.snap_record()
        plan.add('', self.files.write, name, {'op': 'revert', 'snapshot': snapshot, 'size': size,
                                              'time': record[1] if record else 0})
        if slv.thick_snapshot:
            text = ('merge snapshot %s into volume %s (lvconvert --merge %s), then make snapshot %s again'
                    % (snapshot, name, self._spec(slv.name), snapshot))
        else:
            text = 'copy snapshot %s (%s) back into volume %s' % (snapshot, self._spec(slv.name), name)
        if size < lv.size:
            text += ', and zero the volume beyond the snapshot\'s %s' % naming.human_size(size)
        plan.add(text, self._revert, name, snapshot, size, record[1] if record else 0)
        plan.add('', self.files.clear, name)
        return plan, before

    def _written_since(self, lv, slv, size):
        """A thick snapshot: its copy-on-write area is not empty (the origin
        or the snapshot was written since). A thin one: its data differs
        from the volume's (read and compared), or the volume is larger and
        holds data beyond it."""
        if slv.thick_snapshot:
            return slv.data_percent is None or slv.data_percent > 0.0
        return not self._same_data(self.path(lv.name), self.path(slv.name), size, lv.size)

    def _same_data(self, volume_path, snap_path, size, volume_size):
        fds = []
        try:
            for path in (volume_path, snap_path):
                fds.append(os.open(self._device(path), os.O_RDONLY))
            offset = 0
            while offset < volume_size:
                count = min(COMPARE_BLOCK, volume_size - offset)
                now = os.pread(fds[0], count, offset)
                if offset < size:
                    then = os.pread(fds[1], min(count, size - offset), offset)
                    then += b'\0' * (count - len(then))
                else:
                    then = b'\0' * count
                if now != then:
                    return False
                offset += count
            return True
        except OSError as exc:
            raise fileio.os_error(exc, 'Comparing volume %s with its snapshot' % volume_path)
        finally:
            for fd in fds:
                os.close(fd)

    def _revert(self, name, snapshot, size, ns):
        """Revert volume name to its snapshot (also what a crash recovery
        completes: a merge that is done leaves no snapshot, a snapshot
        whose copy-on-write area is empty has nothing left to merge)."""
        contents = self.contents()
        lv = contents.volumes.get(name)
        if lv is None:
            raise NotFound('Volume %s disappeared from VG %s during its revert.' % (name, self.vg))
        slv = contents.all.get(bk.snapshot_lv(name, snapshot))
        if slv is not None and slv.thin:
            self._cache.clear()
            qemu_img.convert_to(self._ref(slv.name, size), self._ref(lv.name, lv.size), target_is_zero=False)
        elif lv.thin:
            raise NotFound('Snapshot %s of thin volume %s is gone: the interrupted revert cannot be completed. '
                           'Inspect the volume.' % (snapshot, name))
        else:
            if slv is not None and slv.merging:
                self._run(['lvm', 'lvpoll', '--polloperation', 'merge', '-i', '1', self._spec(slv.name)],
                          'Waiting for the merge of %s' % self._spec(slv.name))
            elif slv is not None and (slv.data_percent is None or slv.data_percent > 0.0):
                self._run(['lvconvert', '--merge', '-i', '1', self._spec(slv.name)],
                          'Merging snapshot %s into %s' % (self._spec(slv.name), self._spec(lv.name)))
            contents = self.contents()
            lv = contents.volumes[name]
            if not lv.active:
                self._activate(lv.name)
        checkpoint('lvm.reverted')
        if size < lv.size:
            # before the snapshot is made again: zeroing after would fill its copy-on-write area
            self._zero(self.path(lv.name), size, lv.size - size)
        if not lv.thin and bk.snapshot_lv(name, snapshot) not in contents.all:
            self._snapshot(lv.name, bk.snapshot_lv(name, snapshot), size, False, bk.snap_tag(size, ns))
