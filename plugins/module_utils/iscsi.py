# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The core of the iscsi_target module: an iSCSI target with file or block
device LUNs, an initiator ACL and CHAP, through a provider of targets/
(tgt or lio). Plan first (check mode returns the actions), then act and
verify; passwords never appear in a result, a diff or an error."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import stat

from ansible_collections.blockyard.storage.plugins.module_utils import targets
from ansible_collections.blockyard.storage.plugins.module_utils.errors import InvalidInput, StorageError
from ansible_collections.blockyard.storage.plugins.module_utils.model import DataRef
from ansible_collections.blockyard.storage.plugins.module_utils.runner import REDACTED, redact
from ansible_collections.blockyard.storage.plugins.module_utils.targets.base import (Chap, Lun, TargetSpec,
                                                                                     validate_iqn, validate_portal)

LIO_DEFAULT_PORTALS = ['0.0.0.0:3260']
MAX_LUN = 16383


def _device_size(path):
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


def _dev_link(path):
    """The block device a stable device name stands for (/dev/<vg>/<lv>,
    /dev/mapper/..., /dev/disk/by-id/...: links udev and LVM make in /dev,
    which only root writes), or None for any other link. The LUN keeps the
    stable name: /dev/dm-N changes from boot to boot."""
    if os.path.normpath(path) != path or not path.startswith('/dev/'):
        return None
    real = os.path.realpath(path)
    if not real.startswith('/dev/') or os.path.dirname(real) != '/dev' and not real.startswith('/dev/mapper/'):
        return None
    try:
        st = os.stat(real)
        parent = os.lstat(os.path.dirname(path))
    except OSError:
        return None
    if not stat.S_ISBLK(st.st_mode) or parent.st_uid != 0 or stat.S_IMODE(parent.st_mode) & 0o022:
        return None
    return real


def lun_ref(path, iqn, number):
    """A DataRef of a LUN's backing path: an absolute path, with no link in
    it, of an existing regular file or block device."""
    where = 'LUN %s of %s' % (number, iqn)
    if not isinstance(path, str) or not os.path.isabs(path):
        raise InvalidInput('%s: path %r must be an absolute path of a regular file or a block device.' % (where, path))
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise InvalidInput('%s: %s cannot be used: %s. Create the file or volume first (blockyard.storage.volume).'
                           % (where, path, exc.strerror), path=path)
    if stat.S_ISLNK(st.st_mode):
        dev = _dev_link(path)
        if dev is not None:
            return DataRef('block', 'raw', _device_size(dev), path=path)
        raise InvalidInput('%s: %s is a symbolic link: links are never followed (except the names udev and LVM '
                           'keep under /dev for a block device, such as /dev/<vg>/<lv>); give the path of the file '
                           'or device itself.' % (where, path), path=path)
    real = os.path.realpath(path)
    if real != os.path.normpath(path) or os.path.normpath(path) != path:
        raise InvalidInput('%s: %s is not a canonical path (a link or .. in a directory part, or a trailing /): '
                           'give %s.' % (where, path, real), path=path)
    if stat.S_ISREG(st.st_mode):
        return DataRef('file', 'raw', st.st_size, path=path)
    if stat.S_ISBLK(st.st_mode):
        return DataRef('block', 'raw', _device_size(path), path=path)
    kind = 'a directory' if stat.S_ISDIR(st.st_mode) else 'neither a regular file nor a block device'
    raise InvalidInput('%s: %s is %s: a LUN is backed by a regular file or a block device.' % (where, path, kind),
                       path=path)


def build_spec(params, provider):
    iqn = validate_iqn(params['iqn'])
    luns, numbers, paths = [], set(), set()
    for item in params.get('luns') or []:
        number = item.get('lun')
        if not isinstance(number, int) or isinstance(number, bool) or not provider.first_lun <= number <= MAX_LUN:
            raise InvalidInput('LUN %r of %s: %s LUNs are numbered from %d (up to %d)%s.'
                               % (number, iqn, provider.name, provider.first_lun, MAX_LUN,
                                  ': LUN 0 is tgt\'s controller' if provider.first_lun == 1 else ''))
        if number in numbers:
            raise InvalidInput('LUN %d of %s is given twice.' % (number, iqn))
        ref = lun_ref(item.get('path'), iqn, number)
        if ref.path in paths:
            raise InvalidInput('%s is given as two LUNs of %s: one LUN per file or device.' % (ref.path, iqn))
        numbers.add(number)
        paths.add(ref.path)
        luns.append(Lun(number, ref, serial=item.get('serial')))
    initiators = params.get('initiators') or []
    allow_all = bool(params.get('allow_all'))
    if allow_all and initiators:
        raise InvalidInput('Target %s: allow_all admits every initiator, so initiators %s would restrict nothing: '
                           'give one or the other.' % (iqn, ', '.join(initiators)))
    chap = mutual = None
    creds = params.get('chap')
    if creds:
        if not creds.get('username') or not creds.get('password'):
            raise InvalidInput('Target %s: chap needs username and password.' % iqn)
        chap = Chap(creds['username'], creds['password'])
        if creds.get('mutual_username') or creds.get('mutual_password'):
            mutual = Chap(creds.get('mutual_username'), creds.get('mutual_password'))
    portals = params.get('portals')
    if portals is None and provider.name == 'lio':
        portals = LIO_DEFAULT_PORTALS
    for portal in portals or []:
        validate_portal(portal)
    return TargetSpec(iqn, luns=luns, initiators=initiators, allow_all=allow_all, chap=chap, mutual_chap=mutual,
                      portals=portals or [], iser=bool(params.get('iser')), write_cache=params.get('write_cache'))


def _lun_summary(lun):
    keys = ('lun', 'kind', 'pool', 'image', 'path') if lun.get('kind') == 'rbd' else ('lun', 'kind', 'path')
    return dict((k, lun.get(k)) for k in keys)


def summary(target):
    """The stable part of a provider's read(), for diffs (no password, only
    whether one is set)."""
    if target is None:
        return None
    return {
        'iqn': target.get('iqn'),
        'luns': [_lun_summary(lun) for lun in sorted(target.get('luns') or [], key=lambda x: x.get('lun'))],
        'initiators': sorted(target.get('initiators') or []),
        'allow_all': bool(target.get('allow_all')),
        'chap_username': target.get('chap_username'),
        'chap_password_set': bool(target.get('chap_password_set')),
        'mutual_chap_username': target.get('mutual_chap_username'),
        'iser': bool(target.get('iser')),
        'write_cache': target.get('write_cache'),
    }


def predicted(spec):
    luns = []
    for lun in sorted(spec.luns, key=lambda x: x.number):
        entry = {'lun': lun.number, 'kind': lun.ref.kind}
        if lun.ref.kind == 'rbd':
            entry.update(pool=lun.ref.pool, image=lun.ref.image)
        else:
            entry['path'] = lun.ref.path
        luns.append(entry)
    return {
        'iqn': spec.iqn,
        'luns': luns,
        'initiators': list(spec.initiators),
        'allow_all': spec.allow_all,
        'chap_username': spec.chap.username if spec.chap else None,
        'chap_password_set': spec.chap is not None,
        'mutual_chap_username': spec.mutual_chap.username if spec.mutual_chap else None,
        'iser': spec.iser,
        'write_cache': spec.write_cache,
    }


def _passwords(params):
    creds = params.get('chap') or {}
    return [v for v in (creds.get('password'), creds.get('mutual_password')) if v]


def _scrub(value, secrets):
    if isinstance(value, dict):
        return dict((k, _scrub(v, secrets)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [_scrub(v, secrets) for v in value]
    return redact(value, secrets)


def ensure_target(params, check_mode):
    secrets = _passwords(params)
    try:
        return _ensure(params, check_mode)
    except StorageError as exc:
        # belt and braces: no error leaves with a password in it
        exc.msg = redact(exc.msg, secrets)
        exc.args = (exc.msg,)
        exc.details = _scrub(exc.details, secrets)
        raise


def _ensure(params, check_mode):
    provider = targets.get(params.get('provider') or 'tgt')(params)
    iqn = validate_iqn(params.get('iqn'))
    state = params.get('state') or 'present'
    if state == 'absent':
        plan, before = provider.plan_remove(iqn)
        after = None
    elif state == 'present':
        spec = build_spec(params, provider)
        plan, before = provider.plan_ensure(spec)
        after = predicted(spec)
    else:
        raise InvalidInput('state %r: use present or absent.' % (state,))
    if plan and not check_mode:
        plan.execute()
    if check_mode or state == 'absent':
        target = after if plan else before
    else:
        target = provider.read(iqn)
    result = {'target': target, 'actions': plan.actions,
              'warnings': list(provider.warnings) + list(plan.warnings)}
    diff = {'before': summary(before), 'after': after if state == 'present' else None}
    if not plan:
        diff['after'] = diff['before']
    elif (before is not None and after is not None and before.get('chap_password_matches') is False
          and summary(before) == after):
        # only the password changes: say so without showing it
        diff['after'] = dict(after, chap_password=REDACTED + ' (changed)')
    secrets = _passwords(params)
    return bool(plan), _scrub(result, secrets), _scrub(diff, secrets)
