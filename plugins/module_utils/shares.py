# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shares (NFS exports, GlusterFS volumes): validation, Cinder-style shares
files, the os-brick mount point convention, mount state and capacity."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import hashlib
import json
import os
import re
import shlex
import time

from ansible_collections.blockyard.storage.plugins.module_utils import fileio, runner
from ansible_collections.blockyard.storage.plugins.module_utils.errors import (CommandFailed, Conflict, InvalidInput,
                                                                               StorageError)
from ansible_collections.blockyard.storage.plugins.module_utils.plan import Plan

DEFAULT_MOUNT_POINT_BASE = '/var/lib/blockyard/mnt'
SHARE_RE = re.compile(r'^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?):(?P<path>/[^\s\x00]*)$')


class ShareLine:
    """One share of a shares file (or of a list): share string and options."""

    def __init__(self, share, options=None, lineno=None):
        self.share = share
        self.options = options
        self.lineno = lineno

    def __repr__(self):
        return 'ShareLine(%r, %r, %r)' % (self.share, self.options, self.lineno)

    def __eq__(self, other):
        return isinstance(other, ShareLine) and (self.share, self.options) == (other.share, other.options)


def validate_share(share):
    """Return share if it reads host:/path, else raise InvalidInput."""
    if not isinstance(share, str) or not SHARE_RE.match(share) or '/../' in share + '/' \
            or share.rstrip('/').endswith('/..'):
        raise InvalidInput('The share %r is invalid: write it as host:/path (NFS export or GlusterFS volume), '
                           'e.g. 192.0.2.10:/srv/cinder or gluster1:/volumes.' % (share,))
    return share


def mount_point(base, share):
    """<base>/<md5 hex of the share string>: the os-brick convention."""
    if not os.path.isabs(base):
        raise InvalidInput('mount_point_base %r must be an absolute path.' % base)
    return os.path.join(base, hashlib.md5(share.encode('utf-8')).hexdigest())


def parse_shares_text(text):
    """Parse a shares file. Returns (shares, errors): ShareLine list in file
    order without duplicates, and (lineno, line, reason) for invalid lines."""
    shares, errors, seen = [], [], {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith('#'):
            continue
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            errors.append((lineno, raw, 'cannot be split into words: %s' % exc))
            continue
        if not words:
            continue
        share, rest = words[0], words[1:]
        options = None
        if rest:
            if rest[0] != '-o' or len(rest) != 2:
                errors.append((lineno, raw, 'expected "host:/path" optionally followed by "-o options"'))
                continue
            options = rest[1]
        try:
            validate_share(share)
        except InvalidInput:
            errors.append((lineno, raw, 'share %r is not host:/path' % share))
            continue
        if share in seen:
            previous = seen[share]
            if previous.options != options:
                errors.append((lineno, raw, 'share %s is listed again with other options (first on line %d)'
                               % (share, previous.lineno)))
            continue
        entry = ShareLine(share, options, lineno)
        seen[share] = entry
        shares.append(entry)
    return shares, errors


def read_shares_config(path):
    """Read and parse a shares file; invalid lines are an error naming them."""
    try:
        with open(path) as handle:
            text = handle.read()
    except IOError as exc:
        raise InvalidInput('Cannot read shares_config %s: %s.' % (path, exc.strerror), path=path)
    shares, errors = parse_shares_text(text)
    if errors:
        raise InvalidInput('shares_config %s has invalid lines: %s. Fix them; no share was touched.'
                           % (path, '; '.join('line %d (%s): %s' % (n, line.strip(), why)
                                              for n, line, why in errors)),
                           path=path, invalid_lines=[{'line': n, 'text': line, 'reason': why}
                                                     for n, line, why in errors])
    return shares


def mounts():
    """{mount_point: (source, fstype, options)} from /proc/self/mountinfo."""
    result = {}
    with open('/proc/self/mountinfo') as handle:
        for line in handle:
            left, _sep, right = line.partition(' - ')
            fields = left.split()
            tail = right.split()
            if len(fields) < 6 or len(tail) < 2:
                continue
            point = fields[4].replace('\\040', ' ').replace('\\011', '\t').replace('\\134', '\\')
            result[point] = (tail[1], tail[0], fields[5] + (',' + tail[2] if len(tail) > 2 else ''))
    return result


def mounted_source(path):
    """The source mounted at path (exactly), or None."""
    entry = mounts().get(os.path.realpath(path)) or mounts().get(path)
    return entry[0] if entry else None


def is_stale(path):
    """True when the mount at path no longer answers (ESTALE, ENOTCONN...)."""
    try:
        os.statvfs(path)
        os.listdir(path)
        return False
    except OSError as exc:
        if exc.errno in (errno.ESTALE, errno.ENOTCONN, errno.EIO, errno.EHOSTDOWN):
            return True
        raise


def capacity(path):
    """total, free (available to non-root) and used bytes of a mounted share."""
    try:
        st = os.statvfs(path)
    except OSError as exc:
        raise StorageError('Cannot read the capacity of %s: %s. Check the mount (stale? server down?).'
                           % (path, exc.strerror), path=path)
    total = st.f_frsize * st.f_blocks
    return {'total_bytes': total, 'free_bytes': st.f_frsize * st.f_bavail,
            'used_bytes': total - st.f_frsize * st.f_bfree}


def require_mounted(base, share):
    """The mount point of share, checked to be a live mount of it."""
    validate_share(share)
    point = mount_point(base, share)
    source = mounted_source(point)
    if source is None:
        raise InvalidInput('Share %s is not mounted at %s: mount it first (blockyard.storage.share_mount or the '
                           'share_mounts role), with the same mount_point_base.' % (share, point), path=point)
    if is_stale(point):
        raise StorageError('Share %s at %s is a stale mount (the server does not answer): remount it with '
                           'blockyard.storage.share_mount.' % (share, point), path=point)
    return point


# ====================================================================== mounting
# What blockyard.storage.share_mount does: plan the actions that bring one
# share (or every share of a shares file) to the wanted state, return them in
# check mode, perform them otherwise.

SHARE_TYPES = ('nfs', 'glusterfs')
# filesystem types /proc/self/mountinfo shows for a mount of each share type
FSTYPES = {'nfs': ('nfs', 'nfs4'), 'glusterfs': ('fuse.glusterfs', 'glusterfs')}
CLIENT_PACKAGES = {'nfs': 'nfs-common (Debian/Ubuntu) or nfs-utils (RHEL/Fedora)',
                   'glusterfs': 'glusterfs-client (Debian/Ubuntu) or glusterfs-fuse (RHEL/Fedora)'}
MOUNT_TIMEOUT = 120
OPTION_ITEM_RE = re.compile(r'^[^\s,\x00]+$')


def validate_type(share_type):
    if share_type not in SHARE_TYPES:
        raise InvalidInput('Share type %r is not supported: use one of %s.' % (share_type, ', '.join(SHARE_TYPES)))
    return share_type


def split_options(options):
    """The items of a mount options string (`a,b=c`), whitespace around items
    and empty items dropped. Items may not contain whitespace."""
    if options is None:
        return []
    if not isinstance(options, str):
        raise InvalidInput('Mount options %r must be a string such as "vers=4.1,noatime".' % (options,))
    items = [item.strip() for item in options.split(',')]
    items = [item for item in items if item]
    for item in items:
        if not OPTION_ITEM_RE.match(item):
            raise InvalidInput('Mount option %r contains whitespace or a NUL byte: write options as one '
                               'comma-separated word, e.g. "vers=4.1,noatime".' % item)
    return items


def join_options(options):
    """The options as given, tidied (no blanks, no empty items); None when empty."""
    items = split_options(options)
    return ','.join(items) if items else None


def normalize_options(options):
    """Canonical form used to compare options: items sorted, exact duplicates
    dropped (`noatime,vers=4.1` equals `vers=4.1, noatime,`)."""
    return ','.join(sorted(set(split_options(options))))


def same_options(first, second):
    return normalize_options(first) == normalize_options(second)


def mount_command(share, share_type, point, options=None):
    """argv of `mount -t <type> [-o <options>] <share> <mount point>`."""
    validate_share(share)
    validate_type(share_type)
    if not os.path.isabs(point):
        raise InvalidInput('Mount point %r must be an absolute path.' % point)
    cmd = ['mount', '-t', share_type]
    opts = join_options(options)
    if opts:
        cmd += ['-o', opts]
    return cmd + [share, point]


def umount_command(point, lazy=False):
    return ['umount'] + (['-l'] if lazy else []) + [point]


def options_record_path(base, share):
    """<base>/.<md5>.options: the options this module last mounted share with."""
    return os.path.join(base, '.%s.options' % os.path.basename(mount_point(base, share)))


def read_options_record(path):
    """The record at path (dict), or None when there is none."""
    try:
        with open(path, 'rb') as handle:
            raw = handle.read(65537)
    except (IOError, OSError) as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise StorageError('Cannot read the mount options record %s: %s.' % (path, exc.strerror), path=path)
    try:
        record = json.loads(raw.decode('utf-8'))
    except ValueError:
        record = None
    if not isinstance(record, dict) or not isinstance(record.get('options'), (str, type(None))):
        raise StorageError('Mount options record %s is not one this module wrote (not a JSON object with '
                           '"options"): remove it and re-run; the share is then adopted as it is mounted.' % path,
                           path=path)
    return record


def mount_entry(point):
    """(source, fstype, options) of the mount at point, or None."""
    table = mounts()
    return table.get(os.path.realpath(point)) or table.get(point)


def same_source(mounted, share):
    return mounted is not None and mounted.rstrip('/') == share.rstrip('/')


def describe_mount(entry, record, stale=False):
    """What the diff shows of a mount point."""
    if entry is None:
        return {'state': 'unmounted'}
    return {'state': 'stale' if stale else 'mounted', 'source': entry[0], 'fstype': entry[1],
            'options': record.get('options') if record else None}


def writable_test(share, point):
    """Create, fsync and remove a temporary file on the mounted share."""
    import tempfile
    try:
        fd, path = tempfile.mkstemp(prefix='.blockyard-writable-', dir=point)
        try:
            os.write(fd, b'blockyard write test\n')
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(path)
    except OSError as exc:
        raise StorageError('Share %s mounted at %s is not writable: %s. Fix the export: for NFS check that it is '
                           'exported rw and whether root_squash maps root to nobody; for GlusterFS check the '
                           'ownership of the bricks (gluster volume set <vol> storage.owner-uid/owner-gid).'
                           % (share, point, exc.strerror or exc), share=share, path=point, errno=exc.errno)
    return True


def gluster_client_log(point):
    """The log file of the GlusterFS client of a mount point."""
    return '/var/log/glusterfs/%s.log' % point.strip('/').replace('/', '-')


def _log_errors(path, limit=5):
    try:
        with open(path, 'rb') as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(handle.tell() - 65536, 0))
            lines = handle.read().decode('utf-8', 'replace').splitlines()
    except (IOError, OSError):
        return []
    return [line for line in lines if ' E [' in line][-limit:]


def mount_failure(share, share_type, point, exc):
    """A CommandFailed for a failed mount that names share, cause and fix."""
    stderr = exc.details.get('stderr') or ''
    low = stderr.lower()
    host = share.rsplit(':', 1)[0]
    details = dict(exc.details)
    if exc.details.get('rc') is None and 'timed out' not in exc.msg:
        cause = 'the mount command cannot run (%s)' % exc.msg
        fix = 'install util-linux and the %s client: %s' % (share_type, CLIENT_PACKAGES[share_type])
    elif 'unknown filesystem type' in low or 'helper program' in low or 'wrong fs type' in low:
        cause = 'this host cannot mount %s shares' % share_type
        fix = 'install the %s client: %s' % (share_type, CLIENT_PACKAGES[share_type])
    elif share_type == 'nfs' and 'no such device' in low:
        cause = 'the kernel has no NFS client'
        fix = 'load it (modprobe nfs) or use a kernel built with NFS support'
    elif 'only root' in low:
        cause = 'mounting needs root'
        fix = 'run the task with become: true'
    elif 'access denied' in low:
        cause = 'the server refused access to the export'
        fix = 'check /etc/exports on %s allows this host (exportfs -v) and that the export path is right' % host
    elif share_type == 'nfs' and 'reason given by server: no such file or directory' in low:
        # NFSv4 against a Linux server that exports other paths: the path is
        # looked up in the server's pseudo-filesystem and is not there
        path = share.split(':', 1)[1]
        cause = 'the server has no export %s (reason given by server: No such file or directory)' % path
        fix = ('correct the path of the share, or export %s on %s (/etc/exports, then exportfs -ra); exportfs -v '
               'on the server lists what it exports' % (path, host))
    elif 'timed out' in exc.msg or 'timed out' in low or 'no route to host' in low or 'connection refused' in low:
        cause = 'the server does not answer'
        fix = ('check that %s is up and reachable and that its %s service runs (firewall? %s)'
               % (host, 'NFS' if share_type == 'nfs' else 'glusterd',
                  'rpcbind/nfs-server' if share_type == 'nfs' else 'ports 24007 and 49152+'))
    elif share_type == 'glusterfs':
        log = gluster_client_log(point)
        errors = _log_errors(log)
        details.update(client_log=log, client_log_errors=errors)
        cause = 'the GlusterFS client could not mount it%s' % (
            ': %s' % errors[-1].split(']', 2)[-1].strip() if errors else '')
        volume = share.split(':/', 1)[1]
        fix = ('is glusterd running on %s, and does volume %s exist and is it started (gluster volume status %s '
               'on the server)? The client log is %s' % (host, volume, volume, log))
    else:
        cause = 'mount failed: %s' % (stderr.strip().splitlines()[-1] if stderr.strip() else exc.msg)
        fix = ('check that %s exports the path to this host (showmount -e %s), that the NFS server runs and that '
               'the options are valid for this client' % (host, host))
    details.pop('msg', None)
    return CommandFailed('Cannot mount %s share %s at %s: %s. Fix: %s.' % (share_type, share, point, cause, fix),
                         share=share, **details)


def umount_failure(share, point, exc):
    stderr = (exc.details.get('stderr') or '').lower()
    if 'busy' in stderr:
        fix = ('it is in use: stop what uses it (fuser -vm %s shows the processes; running VMs? exported volumes?), '
               'then re-run' % point)
    else:
        fix = 'check the mount (umount %s by hand shows the full error), then re-run' % point
    details = dict(exc.details)
    details.pop('msg', None)
    return CommandFailed('Cannot unmount share %s at %s: %s. Fix: %s.' % (share, point, exc.msg, fix),
                         share=share, **details)


def _make_mount_point(point):
    os.makedirs(point, 0o755)


def _do_mount(share, share_type, point, options, created_dir):
    try:
        runner.run(mount_command(share, share_type, point, options), timeout=MOUNT_TIMEOUT,
                   what='Mounting %s at %s' % (share, point))
    except CommandFailed as exc:
        if created_dir:
            _remove_quietly(point)
        raise mount_failure(share, share_type, point, exc)


def _remove_quietly(point, wait=3.0):
    """rmdir a mount point made for a failed mount. A failed GlusterFS client
    can still be tearing down its FUSE mount (EBUSY) for a moment."""
    deadline = time.time() + wait
    while True:
        try:
            os.rmdir(point)
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.time() > deadline:
                return
            time.sleep(0.1)


def _do_umount(share, point, lazy=False):
    try:
        runner.run(umount_command(point, lazy), timeout=MOUNT_TIMEOUT,
                   what='Unmounting %s from %s' % (share, point))
    except CommandFailed as exc:
        raise umount_failure(share, point, exc)


def _remove_mount_point(point, warnings):
    try:
        os.rmdir(point)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            warnings.append('mount point %s is not empty after unmounting: left in place (files written while the '
                            'share was not mounted?)' % point)
            return
        raise StorageError('Cannot remove mount point %s: %s.' % (point, exc.strerror), path=point)


def _write_record(base, path, share, share_type, options):
    if not os.path.isdir(base):
        os.makedirs(base, 0o755)
    fileio.write_json(path, {'share': share, 'type': share_type, 'options': options})


def _remount_reason(entry, record, share_type, options):
    """Why a live mount of the right source must be remounted, or None. A mount
    without a record (made by hand or by Cinder) is adopted unless what the
    kernel shows (filesystem type, ro/rw) contradicts the request."""
    if entry[1] not in FSTYPES[share_type]:
        return 'it is mounted as %s, %s was asked for' % (entry[1], share_type)
    if record is None:
        wanted = set(split_options(options))
        flags = set(entry[2].split(','))
        if 'ro' in wanted and 'ro' not in flags:
            return 'it is mounted read-write, ro was asked for'
        if 'rw' in wanted and 'ro' in flags:
            return 'it is mounted read-only, rw was asked for'
        return None
    if record.get('type') not in (None, share_type):
        return 'it was mounted as %s, %s is asked for' % (record.get('type'), share_type)
    if not same_options(record.get('options'), options):
        return 'options change from %r to %r' % (record.get('options') or '', join_options(options) or '')
    return None


def plan_share(share, share_type, options, base, state, warnings):
    """(plan, before, after, mount point, record) for one share."""
    validate_share(share)
    if state == 'mounted':
        validate_type(share_type)
    options = join_options(options)
    point = mount_point(base, share)
    record_path = options_record_path(base, share)
    record = read_options_record(record_path)
    entry = mount_entry(point)
    if entry is not None and not same_source(entry[0], share):
        raise Conflict('%s is the mount point of share %s, but %s is mounted there: unmount it (umount %s) or '
                       'choose another mount_point_base.' % (point, share, entry[0], point),
                       share=share, mount_point=point, mounted_source=entry[0])
    stale = entry is not None and is_stale(point)
    before = describe_mount(entry, record, stale)
    plan = Plan('share_mount')
    if state == 'mounted':
        after = {'state': 'mounted', 'source': share, 'fstype': FSTYPES[share_type][0], 'options': options}
        mount_cmd = ' '.join(mount_command(share, share_type, point, options))
        if entry is None:
            if os.path.lexists(point) and not os.path.isdir(point):
                raise Conflict('Mount point %s of share %s exists and is not a directory: remove it or choose '
                               'another mount_point_base.' % (point, share), path=point)
            created = not os.path.isdir(point)
            if created:
                plan.add('create mount point %s' % point, _make_mount_point, point)
            plan.add(mount_cmd, _do_mount, share, share_type, point, options, created)
        elif stale:
            plan.add('lazy-unmount the stale mount of %s: umount -l %s' % (share, point),
                     _do_umount, share, point, True)
            plan.add(mount_cmd, _do_mount, share, share_type, point, options, False)
        else:
            reason = _remount_reason(entry, record, share_type, options)
            if reason:
                plan.add('unmount %s to remount it (%s): umount %s' % (share, reason, point),
                         _do_umount, share, point, False)
                plan.add(mount_cmd, _do_mount, share, share_type, point, options, False)
            elif record is None:
                plan.add('adopt the existing mount of %s at %s (not remounted): record the options (%s) in %s'
                         % (share, point, options or 'none', record_path),
                         _write_record, base, record_path, share, share_type, options)
        if plan.steps and plan.steps[-1][1] is _do_mount:
            plan.add('record the mount options (%s) in %s' % (options or 'none', record_path),
                     _write_record, base, record_path, share, share_type, options)
    else:
        after = {'state': 'unmounted'}
        if entry is not None:
            plan.add('unmount %s: umount %s%s' % (share, '-l ' if stale else '', point),
                     _do_umount, share, point, stale)
        if entry is not None:
            plan.add('remove mount point %s' % point, _remove_mount_point, point, warnings)
        elif os.path.isdir(point) and not os.path.islink(point):
            if os.listdir(point):
                warnings.append('mount point %s of share %s is not mounted and not empty: left in place'
                                % (point, share))
            else:
                plan.add('remove mount point %s' % point, _remove_mount_point, point, warnings)
        if record is not None or os.path.lexists(record_path):
            plan.add('remove the options record %s' % record_path, fileio.unlink, record_path)
    return plan, before, after, point, record


def ensure_one(share, share_type, options, base, state, check_writable, check_mode, warnings):
    """Bring one share to state; the per-share result and diff."""
    plan, before, after, point, record = plan_share(share, share_type, options, base, state, warnings)
    if not check_mode:
        plan.execute()
    if share_type is None and record:
        share_type = record.get('type')
    result = {'share': share, 'type': share_type, 'options': join_options(options), 'mount_point': point,
              'state': state, 'actions': plan.actions, 'changed': bool(plan), 'capacity': None}
    live = mount_entry(point) is not None
    if state == 'mounted' and live and (not check_mode or not plan):
        result['capacity'] = capacity(point)
        if check_writable and not check_mode:
            result['writable'] = writable_test(share, point)
    diff = {'before': before, 'after': after,
            'before_header': '%s (%s)' % (share, point), 'after_header': '%s (%s)' % (share, point)}
    return result, diff


def ensure_shares(params, check_mode):
    """The share_mount module: one share, or every share of shares_config."""
    base = params.get('mount_point_base') or DEFAULT_MOUNT_POINT_BASE
    if not os.path.isabs(base):
        raise InvalidInput('mount_point_base %r must be an absolute path.' % base)
    state = params.get('state') or 'mounted'
    share_type = params.get('type')
    if params.get('share') and params.get('shares_config'):
        raise InvalidInput('share and shares_config are mutually exclusive: manage one share, or every share of '
                           'a shares file.')
    if share_type is not None:
        validate_type(share_type)
    elif state == 'mounted':
        raise InvalidInput('type is required to mount a share: nfs or glusterfs.')
    split_options(params.get('options'))
    warnings = []
    if params.get('share'):
        validate_share(params['share'])
        result, diff = ensure_one(params['share'], share_type, params.get('options'), base, state,
                                  params.get('check_writable'), check_mode, warnings)
        changed = result.pop('changed')
        result['diff'] = diff
        if warnings:
            result['warnings'] = warnings
        return changed, result, None
    if not params.get('shares_config'):
        raise InvalidInput('Give share (one host:/path) or shares_config (a shares file).')
    lines = read_shares_config(params['shares_config'])  # invalid lines: error, nothing touched
    for line in lines:
        split_options(line.options)
    results, diffs, done = [], {'before': {}, 'after': {}}, []
    for line in lines:
        options = line.options if line.options is not None else params.get('options')
        try:
            one, diff = ensure_one(line.share, share_type, options, base, state, params.get('check_writable'),
                                   check_mode, warnings)
        except StorageError as exc:
            if done:
                exc.msg += ' (Shares handled before it: %s.)' % ', '.join(done)
            exc.details.setdefault('share', line.share)
            exc.details['line'] = line.lineno
            raise
        one['line'] = line.lineno
        results.append(one)
        done.append(line.share)
        diffs['before'][line.share] = diff['before']
        diffs['after'][line.share] = diff['after']
    changed = any(r.pop('changed') for r in results)
    result = {'shares': results, 'shares_config': params['shares_config'], 'mount_point_base': base,
              'type': share_type, 'options': join_options(params.get('options')), 'state': state,
              'actions': ['%s: %s' % (r['share'], a) for r in results for a in r['actions']],
              'diff': dict(diffs, before_header=params['shares_config'], after_header=params['shares_config'])}
    if warnings:
        result['warnings'] = warnings
    return changed, result, None


def share_lines(params):
    """The shares named by the share, shares and shares_config options."""
    lines = []
    if params.get('share'):
        lines.append(ShareLine(validate_share(params['share'])))
    for item in params.get('shares') or []:
        share = item.get('share') if isinstance(item, dict) else item
        lines.append(ShareLine(validate_share(share), item.get('options') if isinstance(item, dict) else None))
    if params.get('shares_config'):
        lines.extend(read_shares_config(params['shares_config']))
    return lines
