# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the rbd backend keeps in the cluster itself (never on the
controller's disk, so that any controller can complete what another began):

- the journal of an interrupted operation: one omap key per volume,
  ``volume-<name>``, of the object ``blockyard.journal`` in the pool (and
  namespace), holding JSON that is validated field by field before use;
- the lock of a volume: the object ``blockyard.lock.volume-<name>``, created
  exclusively (one RADOS operation: whoever creates it holds the lock) with
  its holder (host, boot id, pid and process start time) as its content, and
  removed to release it. A holder found dead on this host is broken at once
  (a version-guarded remove, so that two waiters cannot both break it); a
  holder on another host is waited for, and a timeout names it and the
  command that breaks it."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import contextlib
import json
import os
import socket
import time

from ansible_collections.blockyard.storage.plugins.module_utils import naming
from ansible_collections.blockyard.storage.plugins.module_utils.ceph import rados
from ansible_collections.blockyard.storage.plugins.module_utils.errors import LockTimeout, StorageError

JOURNAL_OBJECT = 'blockyard.journal'
LOCK_PREFIX = 'blockyard.lock.'
LOCK_TIMEOUT = 300

# op: {field: check}; every journal names only its own volume's images and snapshots
_SNAP = 'snapshot name'
JOURNAL_FIELDS = {
    'create': {'parent': 'parent', 'size': 'size'},
    'clone': {'snapshot': 'clone snapshot'},
    'snapshot_create': {'snapshot': _SNAP},
    'snapshot_delete': {'snapshot': _SNAP},
    'revert': {'snapshot': _SNAP, 'size': 'size'},
    'delete': {'parent': 'parent'},
}
OPERATIONS = {'create': 'create', 'clone': 'copy', 'snapshot_create': 'snapshot create',
              'snapshot_delete': 'snapshot delete', 'revert': 'revert', 'delete': 'delete'}


class InvalidJournal(StorageError):
    """A journal that does not validate (written by another tool, or damaged)."""


def image_name(volume):
    return 'volume-%s' % volume


def snap_name(snapshot):
    """The RBD snapshot of a volume's snapshot (Cinder names them so)."""
    return 'snapshot-%s' % snapshot


def clone_snap(dest):
    """The snapshot of a source volume that a copy into `dest` reads from."""
    return 'volume-%s.clone_snap' % dest


def _check_field(name, key, kind, value):
    def bad(why):
        return InvalidJournal('The journal of volume %s (omap key %s of %s) has an invalid %s %r: %s. It was not '
                              'written by this collection; inspect it (rados listomapvals %s) and remove it '
                              '(rados rmomapkey), or delete the volume with force=true.'
                              % (name, image_name(name), JOURNAL_OBJECT, key, value, why, JOURNAL_OBJECT))
    if kind == _SNAP:
        if not isinstance(value, str) or not naming.NAME_RE.fullmatch(value):
            raise bad('not a snapshot name')
    elif kind == 'clone snapshot':
        if not isinstance(value, str) or not value.startswith('volume-') or not value.endswith('.clone_snap') or \
                not naming.NAME_RE.fullmatch(value[len('volume-'):-len('.clone_snap')]):
            raise bad('not the name of a copy\'s snapshot')
    elif kind == 'size':
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0
                                  or value >= 2 ** 63):
            raise bad('not a size in bytes')
    elif kind == 'parent':
        if value is None:
            return
        if not isinstance(value, dict) or set(value) != set(['pool', 'namespace', 'image', 'snapshot', 'id']):
            raise bad('not a parent record')
        for part in ('pool', 'image', 'snapshot'):
            if not isinstance(value[part], str) or not value[part] or '/' in value[part] or '@' in value[part]:
                raise bad('its %s is not a name' % part)
        if not isinstance(value['namespace'], str) or not isinstance(value['id'], str):
            raise bad('its namespace or id is not a string')


def validate_journal(name, journal):
    if not isinstance(journal, dict) or journal.get('op') not in JOURNAL_FIELDS:
        raise InvalidJournal('The journal of volume %s (omap key %s of %s) names no known operation: %r. Inspect '
                             'it (rados listomapvals %s) and remove it, or delete the volume with force=true.'
                             % (name, image_name(name), JOURNAL_OBJECT, journal, JOURNAL_OBJECT))
    fields = JOURNAL_FIELDS[journal['op']]
    extra = set(journal) - set(fields) - set(['op'])
    if extra:
        raise InvalidJournal('The journal of volume %s has unknown fields %s: it was not written by this '
                             'collection. Inspect it (rados listomapvals %s) and remove it, or delete the volume '
                             'with force=true.' % (name, ', '.join(sorted(extra)), JOURNAL_OBJECT))
    for key, kind in fields.items():
        _check_field(name, key, kind, journal.get(key))
    parent = journal.get('parent')
    if parent and parent['snapshot'].endswith('.clone_snap') and parent['snapshot'] != clone_snap(name):
        raise InvalidJournal('The journal of volume %s names the snapshot %s of %s, which belongs to another copy: it '
                             'was not written by this collection. Inspect it (rados listomapvals %s) and remove it, '
                             'or delete the volume with force=true.'
                             % (name, parent['snapshot'], parent['image'], JOURNAL_OBJECT))
    return journal


class Journal:
    """The journals of the volumes of one pool (namespace)."""

    def __init__(self, ioctx):
        self.ioctx = ioctx

    def read(self, name):
        """The validated journal of volume `name`, or None."""
        with rados.ReadOpCtx() as op:
            values, _ret = self.ioctx.get_omap_vals_by_keys(op, (image_name(name),))
            try:
                self.ioctx.operate_read_op(op, JOURNAL_OBJECT)
            except rados.ObjectNotFound:
                return None
            found = dict(values)
        raw = found.get(image_name(name))
        if raw is None:
            return None
        try:
            journal = json.loads(raw.decode('utf-8'))
        except ValueError:
            raise InvalidJournal('The journal of volume %s (omap key %s of %s) is not JSON. Remove it (rados '
                                 'rmomapkey %s %s), or delete the volume with force=true.'
                                 % (name, image_name(name), JOURNAL_OBJECT, JOURNAL_OBJECT, image_name(name)))
        return validate_journal(name, journal)

    def write(self, name, journal):
        validate_journal(name, journal)
        with rados.WriteOpCtx() as op:
            self.ioctx.set_omap(op, (image_name(name),), (json.dumps(journal, sort_keys=True).encode('utf-8'),))
            self.ioctx.operate_write_op(op, JOURNAL_OBJECT)

    def clear(self, name):
        with rados.WriteOpCtx() as op:
            self.ioctx.remove_omap_keys(op, (image_name(name),))
            try:
                self.ioctx.operate_write_op(op, JOURNAL_OBJECT)
            except rados.ObjectNotFound:
                pass


# ------------------------------------------------------------------ locks
def _boot_id():
    try:
        with open('/proc/sys/kernel/random/boot_id') as handle:
            return handle.read().strip()
    except (IOError, OSError):
        return None


def _start_time(pid):
    """The start time of process pid (field 22 of /proc/<pid>/stat), or None."""
    try:
        with open('/proc/%d/stat' % pid) as handle:
            data = handle.read()
    except (IOError, OSError):
        return None
    return data.rsplit(')', 1)[-1].split()[19]


def me(handle=None):
    pid = os.getpid()
    return {'host': socket.gethostname(), 'boot': _boot_id(), 'pid': pid, 'start': _start_time(pid),
            'since': int(time.time()), 'addr': handle.get_addrs() if handle is not None else None}


def fence(handle, addr, warnings, why):
    """Blocklist a dead client's address, so that the watches it left on
    images (which keep them busy for the watch timeout) are dropped now,
    as librbd does to the dead owner of an exclusive lock."""
    if not addr or handle is None:
        return
    try:
        handle.blocklist_add(addr, 3600)
    except (rados.Error, OSError) as exc:
        warnings.append('Could not blocklist %s (%s): %s; its watches end after the OSDs\' watch timeout.'
                        % (addr, why, exc))
        return
    warnings.append('Blocklisted the Ceph client %s for an hour: %s.' % (addr, why))


def holder_is_dead(holder):
    """True when the holder is known to be gone: a process of this host
    (same boot) that no longer runs, or one of an earlier boot of it."""
    if not isinstance(holder, dict) or holder.get('host') != socket.gethostname():
        return False
    if holder.get('boot') and _boot_id() and holder['boot'] != _boot_id():
        return True
    pid = holder.get('pid')
    if not isinstance(pid, int) or pid <= 0:
        return False
    start = _start_time(pid)
    return start is None or (holder.get('start') is not None and start != holder['start'])


@contextlib.contextmanager
def volume_lock(ioctx, name, where, timeout=None, warnings=None, handle=None):
    """Hold the lock of volume `name` (an object in its pool). handle: the
    cluster connection (its address is recorded, and a dead holder's is
    blocklisted when its lock is broken)."""
    obj = LOCK_PREFIX + image_name(name)
    timeout = LOCK_TIMEOUT if timeout is None else timeout
    warnings = [] if warnings is None else warnings
    deadline = time.monotonic() + timeout
    mine = json.dumps(me(handle), sort_keys=True).encode('utf-8')
    delay = 0.05
    while True:
        with rados.WriteOpCtx() as op:
            op.new(rados.LIBRADOS_CREATE_EXCLUSIVE)
            op.write_full(mine)
            try:
                ioctx.operate_write_op(op, obj)
                version = ioctx.get_last_version()
                break
            except rados.ObjectExists:
                pass
        try:
            raw = ioctx.read(obj, 4096)
            seen = ioctx.get_last_version()
        except rados.ObjectNotFound:
            continue
        try:
            holder = json.loads(raw.decode('utf-8'))
        except ValueError:
            holder = None
        if holder_is_dead(holder):
            if not _remove_unchanged(ioctx, obj, seen):
                continue    # another waiter broke it first, or its holder released it
            warnings.append('Broke the lock of volume %s left by process %s on %s (it no longer runs).'
                            % (name, holder.get('pid'), holder.get('host')))
            fence(handle, holder.get('addr'), warnings, 'the client of that dead process')
            continue
        if time.monotonic() > deadline:
            who = ('process %s on %s since %s' % (holder.get('pid'), holder.get('host'),
                                                  time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(holder['since'])))
                   if isinstance(holder, dict) and holder.get('since') else 'an unknown holder (%r)' % raw[:200])
            raise LockTimeout('Volume %s in %s is locked by %s, still after %d s. Wait for that task to end; if its '
                              'host crashed, break the lock: rados -p <pool> [-N <namespace>] rm %s.'
                              % (name, where, who, timeout, obj), volume=name)
        time.sleep(delay)
        delay = min(delay * 2, 1.0)
    try:
        yield
    finally:
        _remove_unchanged(ioctx, obj, version)  # False: broken by an operator, nothing of ours is left


def _remove_unchanged(ioctx, obj, version):
    """Remove obj if it is still at `version` (one guarded RADOS operation)."""
    with rados.WriteOpCtx() as op:
        op.assert_version(version)
        op.remove()
        try:
            ioctx.operate_write_op(op, obj)
            return True
        except (rados.Error, OSError):
            return False
