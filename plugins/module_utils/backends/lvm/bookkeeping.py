# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the lvm backend knows of LVM itself: its name rules, the names of
our logical volumes, the reports of ``lvs``/``vgs`` (JSON), the tag that
records a snapshot's point in time, and the journal and lock files of a
volume group kept on the host.

Names of our logical volumes (nothing else in a VG is ever touched):

- ``volume-<volume>``: a volume;
- ``volsnap-<volume>.<snapshot>``: a snapshot (``lvcreate -s``; LVM reserves
  names that start with "snapshot", and names may not hold a dot, so the dot
  separates the volume from the snapshot unambiguously);
- ``volclone-<volume>``: the temporary snapshot a copy of the volume reads
  from (the source is locked during the copy: one at a time).

A snapshot LV carries the tag ``blockyard-snap-<size>-<ns>``: the size of
its point in time (a thick snapshot's device grows with its origin) and when
it was made (lv_time has a resolution of one second), so that the latest
snapshot is known."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import json
import os
import re
import stat

from ansible_collections.blockyard.storage.plugins.module_utils import fileio, naming
from ansible_collections.blockyard.storage.plugins.module_utils.errors import InvalidInput, StorageError

VOLUME_PREFIX = 'volume-'
SNAP_PREFIX = 'volsnap-'
CLONE_PREFIX = 'volclone-'
SNAP_TAG_RE = re.compile(r'^blockyard-snap-([1-9][0-9]{0,18})-([0-9]{1,20})$')

# LVM's own rules (lvm2 lib/misc/lvm-string.c): these characters, no
# leading "-", not "." or "..", and for LVs no reserved prefix or part
LVM_NAME_RE = re.compile(r'^[A-Za-z0-9+_.][A-Za-z0-9+_.-]*$')
RESERVED_LV_PREFIXES = ('snapshot', 'pvmove')
RESERVED_LV_PARTS = ('_cdata', '_cmeta', '_corig', '_cpool', '_cvol', '_wcorig', '_mlog', '_mimage', '_pmspare',
                     '_rimage', '_rmeta', '_tdata', '_tmeta', '_vdata', '_vorigin', '_imeta', '_iorig')
NAME_LEN = 127          # a VG or LV name (lvm2 NAME_LEN 128, with its NUL)
DM_NAME_LEN = 127       # a device-mapper name <vg>-<lv>-cow ("-" doubled), with its NUL in 128

VOLUME_RE = re.compile(r'^volume-([A-Za-z0-9][A-Za-z0-9_-]*)$')
SNAP_RE = re.compile(r'^volsnap-([A-Za-z0-9][A-Za-z0-9_-]*)\.([A-Za-z0-9][A-Za-z0-9_-]*)$')
CLONE_RE = re.compile(r'^volclone-([A-Za-z0-9][A-Za-z0-9_-]*)$')

STATE_DIR = '/var/lib/blockyard/lvm'
LOCK_DIR = '/run/lock/blockyard/lvm'


def volume_lv(volume):
    return VOLUME_PREFIX + volume


def snapshot_lv(volume, snapshot):
    return '%s%s.%s' % (SNAP_PREFIX, volume, snapshot)


def clone_lv(volume):
    return CLONE_PREFIX + volume


def snap_tag(size, ns):
    return 'blockyard-snap-%d-%d' % (size, ns)


def dm_name(vg, lv, suffix=''):
    """The device-mapper name of an LV (LVM doubles the "-" of each part)."""
    return '%s-%s%s' % (vg.replace('-', '--'), lv.replace('-', '--'), suffix)


def check_lvm_name(value, what, option, lv=True):
    """InvalidInput unless value is a name LVM accepts for a VG or an LV."""
    fix = 'set %s to a name of letters, digits and "+_.-" that does not start with "-"' % option
    if not isinstance(value, str) or not value:
        raise InvalidInput('The %s name is empty: %s.' % (what, fix))
    if len(value) > NAME_LEN:
        raise InvalidInput('The %s name %r... is %d characters long: LVM allows %d; %s.'
                           % (what, value[:40], len(value), NAME_LEN, fix))
    if value in ('.', '..') or not LVM_NAME_RE.fullmatch(value):
        raise InvalidInput('The %s name %r is not a valid LVM name (LVM allows letters, digits and "+_.-", not a '
                           'leading "-", not "." or ".."): %s.' % (what, value, fix))
    if lv:
        for prefix in RESERVED_LV_PREFIXES:
            if value.startswith(prefix):
                raise InvalidInput('The %s name %r starts with "%s", which LVM reserves: %s.'
                                   % (what, value, prefix, fix))
        for part in RESERVED_LV_PARTS:
            if part in value:
                raise InvalidInput('The %s name %r contains "%s", which LVM reserves for its internal volumes: %s.'
                                   % (what, value, part, fix))
    return value


def check_lv_name_fits(vg, lv, what):
    """InvalidInput when an LV name of ours would be refused by LVM in vg:
    a reserved part, or a device-mapper name (with the -cow or -real suffix
    of a thick snapshot and its origin) above LVM's limit."""
    for part in RESERVED_LV_PARTS:
        if part in lv:
            raise InvalidInput('The %s makes the LV name %s, which contains "%s": LVM reserves it for its internal '
                               'volumes. Choose a name without "%s".' % (what, lv, part, part))
    longest = len(dm_name(vg, lv, '-real'))
    if longest > DM_NAME_LEN or len(lv) > NAME_LEN:
        raise InvalidInput('The %s is too long for LVM: its LV %s in VG %s makes the device-mapper name %s of %d '
                           'characters (the limit is %d, every "-" counts twice). Choose a shorter name.'
                           % (what, lv, vg, dm_name(vg, lv, '-real'), longest, DM_NAME_LEN))


# ------------------------------------------------------------------ reports
LV_FIELDS = ('lv_name', 'lv_uuid', 'lv_attr', 'lv_size', 'origin', 'pool_lv', 'lv_tags', 'data_percent',
             'metadata_percent', 'segtype', 'lv_active', 'lv_device_open', 'lv_merging', 'lv_time')
VG_FIELDS = ('vg_name', 'vg_uuid', 'vg_size', 'vg_free', 'vg_extent_size', 'vg_attr')
REPORT_OPTIONS = ['--reportformat', 'json', '--units', 'b', '--nosuffix', '--binary']


class LvmReportError(StorageError):
    """An lvs/vgs report that is not what LVM prints."""


def _report_rows(text, section, command):
    try:
        data = json.loads(text)
    except ValueError:
        raise LvmReportError('%s printed no JSON report (LVM >= 2.02.158 is needed for --reportformat json): %r'
                             % (command, text[:200]))
    rows = []
    try:
        for report in data['report']:
            rows.extend(report.get(section, []))
    except (KeyError, TypeError, AttributeError):
        raise LvmReportError('%s printed a JSON report without "%s" rows: %r' % (command, section, text[:200]))
    if not all(isinstance(r, dict) for r in rows):
        raise LvmReportError('%s printed a JSON report with rows that are not objects' % command)
    return rows


def _int(value, field, command):
    text = str(value).strip()
    if not re.fullmatch(r'[0-9]+', text):
        raise LvmReportError('%s reported %s=%r, not a number of bytes' % (command, field, value))
    return int(text)


def _percent(value):
    text = str(value or '').strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _flag(value):
    return str(value).strip() in ('1', 'open', 'active', 'merging', 'yes')


class LV:
    """One row of ``lvs``."""

    def __init__(self, row):
        self.name = row.get('lv_name', '')
        self.uuid = row.get('lv_uuid', '')
        self.attr = row.get('lv_attr', '') or ''
        self.size = _int(row.get('lv_size', ''), 'lv_size', 'lvs')
        self.origin = row.get('origin', '') or ''
        self.pool = row.get('pool_lv', '') or ''
        self.tags = [t for t in (row.get('lv_tags', '') or '').split(',') if t]
        self.data_percent = _percent(row.get('data_percent'))
        self.metadata_percent = _percent(row.get('metadata_percent'))
        self.segtype = row.get('segtype', '') or ''
        # the attr's fifth and sixth characters: (a)ctive, (o)pen
        self.active = self.attr[4:5] == 'a' or _flag(row.get('lv_active', ''))
        self.open = self.attr[5:6] == 'o' or _flag(row.get('lv_device_open', ''))
        self.merging = _flag(row.get('lv_merging', '')) or self.attr[:1] == 'S'
        self.time = row.get('lv_time', '') or ''

    @property
    def thin(self):
        return self.segtype == 'thin'

    @property
    def thick_snapshot(self):
        return self.attr[:1] in ('s', 'S')

    @property
    def thin_pool(self):
        return self.segtype == 'thin-pool' or self.attr[:1] == 't'

    def snap_record(self):
        """(size, ns) from our tag, or None when absent or ambiguous."""
        found = [SNAP_TAG_RE.fullmatch(t) for t in self.tags if t.startswith('blockyard-snap-')]
        if len(found) != 1 or found[0] is None:
            return None
        return int(found[0].group(1)), int(found[0].group(2))

    def __repr__(self):
        return 'LV(%s %s %d)' % (self.name, self.attr, self.size)


def parse_lvs(text):
    """The LVs of an ``lvs --reportformat json`` report (rows whose names
    are not LVM's hidden ones, "[...]")."""
    rows = _report_rows(text, 'lv', 'lvs')
    return [LV(row) for row in rows if not str(row.get('lv_name', '')).startswith('[')]


def parse_vgs(text):
    rows = _report_rows(text, 'vg', 'vgs')
    result = []
    for row in rows:
        result.append({'name': row.get('vg_name', ''), 'uuid': row.get('vg_uuid', ''),
                       'size': _int(row.get('vg_size', ''), 'vg_size', 'vgs'),
                       'free': _int(row.get('vg_free', ''), 'vg_free', 'vgs'),
                       'extent_size': _int(row.get('vg_extent_size', ''), 'vg_extent_size', 'vgs'),
                       'attr': row.get('vg_attr', '')})
    return result


class Contents:
    """What a VG holds of ours, by name: volumes {name: LV}, snapshots
    {volume: {snapshot: LV}}, clone snapshots {volume: LV}; other LVs are
    never ours (`others`, by name)."""

    def __init__(self, lvs):
        self.all = dict((lv.name, lv) for lv in lvs)
        self.volumes, self.snapshots, self.clones, self.others = {}, {}, {}, []
        for lv in lvs:
            match = VOLUME_RE.fullmatch(lv.name)
            if match:
                self.volumes[match.group(1)] = lv
                continue
            match = SNAP_RE.fullmatch(lv.name)
            if match:
                self.snapshots.setdefault(match.group(1), {})[match.group(2)] = lv
                continue
            match = CLONE_RE.fullmatch(lv.name)
            if match:
                self.clones[match.group(1)] = lv
                continue
            self.others.append(lv.name)

    def snapshots_of(self, volume):
        """[(snapshot name, LV)] of a volume, oldest first (our tag's time,
        then lv_time, then name)."""
        snaps = self.snapshots.get(volume, {})

        def key(item):
            record = item[1].snap_record()
            return (record[1] if record else 0, item[1].time, item[0])
        return sorted(snaps.items(), key=key)


# ------------------------------------------------------------------ journal and locks on the host
class InvalidJournal(StorageError):
    """A journal this collection did not write (or that was damaged)."""


JOURNAL_FIELDS = {
    'create': {},
    'clone': {},
    'extend': {'from': 'size', 'size': 'size'},
    'delete': {},
    'snapshot_delete': {'snapshot': 'snapshot'},
    'revert': {'snapshot': 'snapshot', 'size': 'size', 'time': 'ns'},
}
OPERATIONS = {'create': 'create', 'clone': 'copy', 'extend': 'extend', 'delete': 'delete',
              'snapshot_delete': 'snapshot delete', 'revert': 'revert'}


def journal_problem(journal):
    if not isinstance(journal, dict):
        return 'is not a JSON object'
    fields = JOURNAL_FIELDS.get(journal.get('op'))
    if fields is None:
        return 'names an unknown operation %r' % (journal.get('op'),)
    extra = set(journal) - set(fields) - set(['op'])
    if extra:
        return 'has unexpected fields %s' % ', '.join(sorted(extra))
    for key, kind in fields.items():
        value = journal.get(key)
        if kind == 'size' and not (isinstance(value, int) and not isinstance(value, bool)
                                   and 0 < value <= naming.MAX_SIZE):
            return 'has an invalid %s %r' % (key, value)
        if kind == 'snapshot' and not (isinstance(value, str) and naming.NAME_RE.fullmatch(value)
                                       and len(value) <= naming.MAX_NAME_LEN):
            return 'has an invalid snapshot name %r' % (value,)
        if kind == 'ns' and not (isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10 ** 20):
            return 'has an invalid %s %r' % (key, value)
    if journal['op'] == 'extend' and journal['size'] <= journal['from']:
        return 'extends from %d to %d bytes' % (journal['from'], journal['size'])
    return None


def _safe_dir(path):
    """Make path (mode 0700) and every missing parent; refuse a link or a
    non-directory anywhere on the way (never followed)."""
    parts = []
    current = os.path.abspath(path)
    while current != '/':
        parts.append(current)
        current = os.path.dirname(current)
    for part in reversed(parts):
        try:
            st = os.lstat(part)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise fileio.os_error(exc, 'Checking the directory', part)
            try:
                os.mkdir(part, 0o700)
            except OSError as exc2:
                if exc2.errno != errno.EEXIST:
                    raise fileio.os_error(exc2, 'Creating the directory', part)
            st = os.lstat(part)
        if not stat.S_ISDIR(st.st_mode):
            raise fileio.UnsafeFile('%s is not a directory (%s): refusing to keep LVM journals or locks through it. '
                                    'Inspect it and remove it by hand.'
                                    % (part, 'a symbolic link' if stat.S_ISLNK(st.st_mode) else 'a file'),
                                    path=part)
    return path


class HostFiles:
    """The journal files (state_dir/<vg uuid>/volume-<name>.journal, 0600)
    and lock files (lock_dir/<vg uuid>/volume-<name>.lock) of one VG. Keyed
    by the VG's UUID: a VG removed and made again under its name never
    inherits the journals of the old one."""

    def __init__(self, vg, vg_uuid, state_dir=None, lock_dir=None):
        if not re.fullmatch(r'[A-Za-z0-9-]{1,64}', vg_uuid or ''):
            raise StorageError('vgs reported the UUID %r for VG %s, not an LVM UUID.' % (vg_uuid, vg))
        self.vg = vg
        self.state_dir = os.path.join(state_dir or STATE_DIR, vg_uuid)
        self.lock_dir = os.path.join(lock_dir or LOCK_DIR, vg_uuid)

    def journal_path(self, name):
        return os.path.join(self.state_dir, 'volume-%s.journal' % name)

    def lock_path(self, name):
        return os.path.join(self.lock_dir, 'volume-%s.lock' % name)

    def ensure_lock_dir(self):
        return _safe_dir(self.lock_dir)

    def read(self, name):
        path = self.journal_path(name)
        if not os.path.lexists(os.path.dirname(path)):
            return None
        journal = fileio.read_json(path, 'LVM journal')
        if journal is None:
            return None
        problem = journal_problem(journal)
        if problem:
            raise InvalidJournal('The journal %s of volume %s in VG %s %s: it was not written by this collection. '
                                 'Inspect it and remove it, or delete the volume with force=true.'
                                 % (path, name, self.vg, problem), path=path)
        return journal

    def write(self, name, journal):
        problem = journal_problem(journal)
        if problem:     # a bug of ours: never write what we would refuse
            raise StorageError('Internal error: the journal of volume %s %s.' % (name, problem))
        _safe_dir(self.state_dir)
        fileio.write_json(self.journal_path(name), journal, mode=0o600)

    def clear(self, name):
        path = self.journal_path(name)
        if fileio.unlink(path):
            fileio.fsync_dir(os.path.dirname(path))

    def journal_names(self):
        try:
            entries = os.listdir(self.state_dir)
        except OSError:
            return []
        return sorted(e[len('volume-'):-len('.journal')] for e in entries
                      if e.startswith('volume-') and e.endswith('.journal'))
