# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The operations behind the volume, volume_info and snapshot modules:
find the backend location, lock, recover, plan, act, report.

Each entry point takes the module's params and check mode and returns
``(changed, result, diff)``; errors are StorageError subclasses."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import contextlib
import os

from ansible_collections.blockyard.storage.plugins.module_utils import locks, naming
from ansible_collections.blockyard.storage.plugins.module_utils.backends.file import FileBackend
from ansible_collections.blockyard.storage.plugins.module_utils.errors import Conflict, InvalidInput, NotFound

DEFAULT_RATIO = {'thin': 20.0, 'thick': 1.0}
LOCATION_KEYS = ('volume_dir', 'share', 'shares', 'shares_config')


# ------------------------------------------------------------------ location
def share_lines(params):
    """The shares named by share/shares/shares_config, as ShareLine list."""
    from ansible_collections.blockyard.storage.plugins.module_utils import shares  # lazy: share locations only
    lines = []
    if params.get('share'):
        lines.append(shares.ShareLine(shares.validate_share(params['share'])))
    for item in params.get('shares') or []:
        share = item.get('share') if isinstance(item, dict) else item
        lines.append(shares.ShareLine(shares.validate_share(share),
                                      item.get('options') if isinstance(item, dict) else None))
    if params.get('shares_config'):
        lines.extend(shares.read_shares_config(params['shares_config']))
    return lines


def _backend(params, directory, location=None):
    return FileBackend(directory, owner=params.get('owner'), group=params.get('group'),
                       mode=naming.parse_mode(params.get('mode')), provider_location=location,
                       cinder_names=bool(params.get('cinder_compatible_names')))


def check_placement_options(params):
    ratio = params.get('max_over_subscription_ratio')
    if ratio is not None and float(ratio) <= 0:
        raise InvalidInput('max_over_subscription_ratio %r must be greater than 0 (1.0: no over-subscription).'
                           % (ratio,))
    reserve = params.get('reserved_percentage')
    if reserve is not None and (float(reserve) < 0 or float(reserve) >= 100):
        raise InvalidInput('reserved_percentage %r must be at least 0 and below 100.' % (reserve,))


def given_locations(params):
    return [key for key in LOCATION_KEYS if params.get(key)]


def candidate_backends(params):
    """(backends of mounted shares or the volume_dir, notes on unusable shares)."""
    check_placement_options(params)
    keys = given_locations(params)
    if not keys:
        raise InvalidInput('No place for volumes was given: set volume_dir (a local directory), share, shares or '
                           'shares_config.')
    if 'volume_dir' in keys and len(keys) > 1:
        raise InvalidInput('volume_dir and %s are mutually exclusive: volumes live either in a local directory or '
                           'on shares.' % ', '.join(k for k in keys if k != 'volume_dir'))
    if params.get('volume_dir'):
        directory = params['volume_dir']
        if not os.path.isabs(directory):
            raise InvalidInput('volume_dir %r must be an absolute path.' % directory)
        return [_backend(params, directory)], []
    from ansible_collections.blockyard.storage.plugins.module_utils import shares  # lazy: share locations only
    base = params.get('mount_point_base') or shares.DEFAULT_MOUNT_POINT_BASE
    lines = share_lines(params)
    if params.get('share') and len(lines) == 1:
        return [_backend(params, shares.require_mounted(base, lines[0].share), lines[0].share)], []
    backends, notes = [], []
    for line in lines:
        try:
            backends.append(_backend(params, shares.require_mounted(base, line.share), line.share))
        except Exception as exc:  # noqa: an unmounted share is skipped, and said
            notes.append('%s: %s' % (line.share, getattr(exc, 'msg', exc)))
    if not backends:
        raise InvalidInput('None of the shares is mounted and usable: %s' % '; '.join(notes))
    return backends, notes


def find_volume(backends, name):
    """The backend holding volume name, or None. Two holders is an error."""
    found = [b for b in backends if b.exists(name)]
    if len(found) > 1:
        raise Conflict('Volume %s exists on several shares (%s): resolve the duplicate by hand before using it.'
                       % (name, ', '.join(b.provider_location for b in found)))
    return found[0] if found else None


def select_backend(backends, size, provisioning, ratio=None, reserved_percentage=0):
    """The share with the most usable free space that passes the
    over-subscription limit and the reserve; an error lists why each failed."""
    ratio = DEFAULT_RATIO[provisioning] if ratio is None else float(ratio)
    best, best_free, reasons = None, None, []
    for backend in backends:
        cap = backend.capacity()
        total = cap['total_bytes']
        usable = cap['free_bytes'] - total * float(reserved_percentage) / 100.0
        provisioned = cap['provisioned_bytes'] + size
        if not total:
            reasons.append('%s: reports no capacity' % backend.provider_location)
            continue
        if provisioned > total * ratio:
            reasons.append('%s: provisioning %s more would reach %.2fx its %s, above the ratio %.2f'
                           % (backend.provider_location, naming.human_size(size), float(provisioned) / total,
                              naming.human_size(total), ratio))
            continue
        if provisioning == 'thick' and usable < size:
            reasons.append('%s: %d bytes usable after the %s%% reserve, %d needed'
                           % (backend.provider_location, max(usable, 0), reserved_percentage, size))
            continue
        if usable <= 0:
            reasons.append('%s: no space left after the %s%% reserve'
                           % (backend.provider_location, reserved_percentage))
            continue
        if best is None or usable > best_free:
            best, best_free = backend, usable
    if best is None:
        raise Conflict('No share can take a %s %s volume: %s. Add space or shares, or raise '
                       'max_over_subscription_ratio / lower reserved_percentage.'
                       % (provisioning, naming.human_size(size), '; '.join(reasons)))
    return best


def locate(params, name, size=None, provisioning='thin', create=True):
    backends, notes = candidate_backends(params)
    holder = backends[0] if len(backends) == 1 else find_volume(backends, name)
    if holder is not None and (not create or len(backends) > 1 or holder.exists(name)):
        return holder, notes
    if not create:
        raise NotFound('Volume %s is on none of the mounted shares (%s).'
                       % (name, ', '.join(b.provider_location for b in backends)))
    if params.get('volume_dir') and params.get('max_over_subscription_ratio') is None \
            and not params.get('reserved_percentage'):
        return backends[0], notes     # a plain directory: no placement limits unless asked for
    return select_backend(backends, size or 0, provisioning, params.get('max_over_subscription_ratio'),
                          params.get('reserved_percentage') or 0), notes


@contextlib.contextmanager
def locked(check_mode, *holders):
    """The locks of volumes given as (backend, name) pairs, taken in one
    fixed order (none in check mode: nothing may be written). A lock file is
    removed again when its volume does not exist afterwards."""
    if check_mode:
        for backend, name in holders:
            locks.check_lock_file(backend.directory, name)
        yield
        return
    with locks.volume_locks([(backend.directory, name) for backend, name in holders]):
        try:
            yield
        finally:
            for backend, name in holders:
                if not backend.exists(name):
                    locks.remove_lock(backend.directory, name)


# ------------------------------------------------------------------ summary
def summary(desc):
    """What the diff shows of a volume."""
    if not desc:
        return {'state': 'absent'}
    return {'state': 'present', 'format': desc['format'], 'provisioning': desc['provisioning'],
            'size_bytes': desc['size_bytes'], 'active_file': desc['active_file'], 'managed': desc['managed'],
            'snapshots': dict((s['name'], s['overlay']) for s in desc['snapshots'])}


# ------------------------------------------------------------------ volume
def volume_source(params, backend):
    if params.get('source_image') and params.get('source_volume'):
        raise InvalidInput('source_image and source_volume are mutually exclusive.')
    if params.get('source_snapshot') and not params.get('source_volume'):
        raise InvalidInput('source_snapshot needs source_volume (the volume the snapshot belongs to).')
    if params.get('source_image'):
        return ('image', params['source_image'], params.get('source_image_format'))
    if params.get('source_volume'):
        backend.validate_name(params['source_volume'], 'source volume')
        if params.get('source_snapshot'):
            backend.validate_snapshot_name(params['source_snapshot'])
            return ('snapshot', backend, params['source_volume'], params['source_snapshot'])
        return ('volume', backend, params['source_volume'])
    return None


def ensure_volume(params, check_mode):
    name = naming.validate_name(params['name'], cinder=bool(params.get('cinder_compatible_names')))
    state = params.get('state') or 'present'
    size = naming.parse_size(params['size']) if params.get('size') is not None else None
    fmt = params.get('format')  # None: the recorded format, raw for a new volume
    provisioning = params.get('provisioning')  # None: the recorded one, thin for a new volume
    if params.get('backend', 'file') != 'file':
        raise InvalidInput('Backend %r is not available yet: use backend=file.' % params.get('backend'))
    notes = []
    if state == 'absent':
        backends, notes = candidate_backends(params)
        backend = find_volume(backends, name) or backends[0]
        src_backend = None
    elif params.get('source_volume'):
        # a copy lands beside its source (one share: locks, reflinks)
        src_backend, notes = locate(params, params['source_volume'], create=False)
        backend = find_volume(candidate_backends(params)[0], name) or src_backend
    else:
        src_backend = None
        backend, notes = locate(params, name, size, provisioning or 'thin')
    source = volume_source(params, src_backend or backend) if state == 'present' else None
    holders = [(backend, name)] + ([(src_backend, params['source_volume'])] if src_backend else [])
    # a lock file with no volume is a leftover (of an interrupted run, or of
    # Cinder's delete_volume, which knows nothing of it): absent removes it
    lone_lock = state == 'absent' and os.path.lexists(locks.lock_path(backend.directory, name))

    with locked(check_mode, *holders):
        actions = []
        if src_backend is not None and (src_backend.directory, params['source_volume']) != (backend.directory, name):
            actions += src_backend.recover(params['source_volume'], check_mode)
        actions += backend.recover(name, check_mode, discard_invalid=state == 'absent' and params.get('force'))
        if state == 'present':
            plan, before = backend.plan_present(name, fmt, size, provisioning, source,
                                                adopt_format=params.get('format'))
        else:
            plan, before = backend.plan_absent(name, params.get('force'))
            if lone_lock and not plan and before is None:
                plan.add('remove leftover lock file %s' % os.path.basename(locks.lock_path(backend.directory, name)))
        before_desc = backend.describe(before)
        actions += plan.actions
        if check_mode or not plan:
            after_desc = before_desc if state == 'present' and before is not None else None
            if state == 'present' and plan:
                after_sum = predicted_summary(before_desc, fmt, plan.size or size, provisioning, name)
                if after_desc and after_sum['size_bytes'] != after_desc['size_bytes']:
                    # check mode of an extend: report the volume as it would be
                    after_desc = dict(after_desc, size_bytes=after_sum['size_bytes'],
                                      virtual_bytes=max(after_sum['size_bytes'], after_desc['virtual_bytes']))
            else:
                after_sum = summary(after_desc) if state == 'present' else {'state': 'absent'}
        else:
            plan.execute()
            after_desc = backend.describe(backend.load(name)) if state == 'present' else None
            after_sum = summary(after_desc)
    if plan.diff_changes:
        after_sum['ownership_set'] = sorted(plan.diff_changes)
    result = {'actions': actions, 'volume': after_desc or predicted_volume(before_desc, after_sum, name, backend),
              'provider_location': backend.provider_location}
    warnings = ['share skipped: %s' % n for n in notes] + backend.warnings + plan.warnings
    if src_backend is not None and src_backend is not backend:
        warnings += src_backend.warnings
    if warnings:
        result['warnings'] = warnings
    diff = {'before': summary(before_desc), 'after': after_sum,
            'before_header': '%s (%s)' % (name, backend.provider_location),
            'after_header': '%s (%s)' % (name, backend.provider_location)}
    return bool(actions), result, diff


def predicted_summary(before_desc, fmt, size, provisioning, name):
    if before_desc:
        after = summary(before_desc)
        if size and size > after['size_bytes']:
            after['size_bytes'] = size
        after['managed'] = True
        return after
    return {'state': 'present', 'format': fmt or 'raw', 'provisioning': provisioning or 'thin', 'size_bytes': size,
            'active_file': naming.volume_file(name), 'managed': True, 'snapshots': {}}


def predicted_volume(before_desc, after_sum, name, backend):
    """The `volume` result where nothing exists to describe (check mode, absent)."""
    result = {'name': name, 'backend': backend.kind, 'provider_location': backend.provider_location,
              'state': after_sum['state']}
    if after_sum['state'] == 'present':
        result.update(format=after_sum['format'], provisioning=after_sum['provisioning'],
                      size_bytes=after_sum['size_bytes'], virtual_bytes=after_sum['size_bytes'],
                      active_file=after_sum['active_file'], snapshots=[], predicted=True,
                      path=os.path.join(backend.directory, after_sum['active_file']))
    return result


# ------------------------------------------------------------------ info
def volume_info(params):
    backends, notes = candidate_backends(params)
    volumes, capacities = [], []
    name = params.get('name')
    if name:
        backends[0].validate_name(name)
    elif params.get('format'):
        raise InvalidInput('format applies to one volume adopted from Cinder (no record of its format yet): give '
                           'name with it. A directory may hold raw and qcow2 volumes side by side.')
    for backend in backends:
        names = [name] if name else backend.list_names()
        known = {}
        for vol in names:
            if name and not backend.exists(vol):
                continue
            try:
                desc = backend.describe(backend.load(vol, params.get('format')))
            except Exception as exc:  # noqa: listing goes on; the broken one says why
                if name:
                    raise
                pending = backend.pending(backend.book(vol))
                desc = {'name': vol, 'backend': backend.kind, 'provider_location': backend.provider_location,
                        'error': getattr(exc, 'msg', str(exc)),
                        'pending_operation': dict(pending, journal='volume-%s.journal' % vol) if pending else None}
            volumes.append(desc)
            known[vol] = desc
        # for one volume, the filesystem's figures only: summing every other
        # volume would make it cost what a listing costs
        capacities.append(backend.capacity(known, volumes=not name))
    keys = ('total_bytes', 'free_bytes', 'used_bytes', 'allocated_bytes', 'provisioned_bytes')
    total = dict((k, None if any(c[k] is None for c in capacities) else sum(c[k] for c in capacities)) for k in keys)
    total['apparent_over_subscription'] = (round(float(total['provisioned_bytes']) / total['total_bytes'], 4)
                                           if total['total_bytes'] and total['provisioned_bytes'] is not None
                                           else None)
    result = {'volumes': volumes, 'capacity': total, 'shares': capacities,
              'volumes_by_name': dict((v['name'], v) for v in volumes)}
    if name and not volumes:
        result['volume'] = None
    elif name:
        result['volume'] = volumes[0]
    warnings = ['share skipped: %s' % n for n in notes] + [w for b in backends for w in b.warnings]
    if warnings:
        result['warnings'] = warnings
    return False, result, None


# ------------------------------------------------------------------ snapshot
def ensure_snapshot(params, check_mode):
    cinder = bool(params.get('cinder_compatible_names'))
    volume_name = naming.validate_name(params['volume'], cinder=cinder)
    snap = naming.validate_snapshot_name(params['name'], cinder=cinder)
    state = params.get('state') or 'present'
    backend, notes = locate(params, volume_name, create=False)
    with locked(check_mode, (backend, volume_name)):
        actions = backend.recover(volume_name, check_mode)
        if state == 'present':
            plan, before = backend.plan_snapshot_present(volume_name, snap)
        elif state == 'absent':
            plan, before = backend.plan_snapshot_absent(volume_name, snap)
        else:
            plan, before = backend.plan_revert(volume_name, snap)
        before_info = dict(before.info or {'active': before.active}) if before else {}
        actions += plan.actions
        if check_mode or not plan:
            after_info = getattr(plan, 'after_info', None) or before_info
            after = before
        else:
            plan.execute()
            after = backend.load(volume_name)
            after_info = dict(after.info or {'active': after.active}) if after else {}
    result = {'actions': actions, 'snapshot': snapshot_result(backend, after, volume_name, snap, state,
                                                              after_info if check_mode else None),
              'provider_location': backend.provider_location}
    warnings = ['share skipped: %s' % n for n in notes] + backend.warnings
    if warnings:
        result['warnings'] = warnings
    before_diff, after_diff = dict(before_info), dict(after_info)
    if state == 'reverted' and plan:
        # the map does not change: say what does
        before_diff['data_since_snapshot'] = 'present'
        after_diff['data_since_snapshot'] = 'discarded'
    diff = {'before': before_diff, 'after': after_diff,
            'before_header': 'volume-%s.info' % volume_name, 'after_header': 'volume-%s.info' % volume_name}
    return bool(actions), result, diff


def snapshot_result(backend, volume, volume_name, snap, state, predicted_info=None):
    result = {'name': snap, 'volume': volume_name, 'provider_location': backend.provider_location}
    snaps = volume.snapshots if volume else {}
    if predicted_info is not None:
        snaps = dict((k, v) for k, v in predicted_info.items() if k != 'active')
    if snap not in snaps:
        result['state'] = 'absent'
        return result
    overlay = snaps[snap]
    entry = volume.entry(overlay) if volume else None
    # the snapshot's size is that of its point in time (the data file): the
    # overlay of the latest snapshot grows when the volume is extended
    data = volume.entry(entry.backing_file) if entry and entry.backing_file else None
    result.update(state='present' if state != 'reverted' else 'reverted', overlay=overlay,
                  overlay_path=os.path.join(backend.directory, overlay),
                  data_file=entry.backing_file if entry else (volume.active if volume else None),
                  size_bytes=(data or entry).virtual_size if entry else (volume.size if volume else None))
    return result
