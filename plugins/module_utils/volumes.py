# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The operations behind the volume, volume_info and snapshot modules, for
every backend: find the location, lock, recover, plan, act, report.

This module knows no backend: it speaks the neutral model (model.py) and the
contract (backends/base.py), and finds the backend through the registry.
Each entry point takes the module's params and check mode and returns
``(changed, result, diff)``; errors are StorageError subclasses."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import contextlib

from ansible_collections.blockyard.storage.plugins.module_utils import backends, images, naming
from ansible_collections.blockyard.storage.plugins.module_utils.errors import Conflict, InvalidInput, NotFound
from ansible_collections.blockyard.storage.plugins.module_utils.model import Source, absent_result

DEFAULT_RATIO = {'thin': 20.0, 'thick': 1.0}


# ------------------------------------------------------------------ location
def check_placement_options(params):
    ratio = params.get('max_over_subscription_ratio')
    if ratio is not None and float(ratio) <= 0:
        raise InvalidInput('max_over_subscription_ratio %r must be greater than 0 (1.0: no over-subscription).'
                           % (ratio,))
    reserve = params.get('reserved_percentage')
    if reserve is not None and (float(reserve) < 0 or float(reserve) >= 100):
        raise InvalidInput('reserved_percentage %r must be at least 0 and below 100.' % (reserve,))


def candidate_backends(params):
    """(backends of the locations the params name, notes on unusable ones)."""
    check_placement_options(params)
    return backends.get(params.get('backend') or 'file').locations(params)


def find_volume(candidates, name):
    """The backend holding volume name, or None. Two holders is an error."""
    found = [b for b in candidates if b.exists(name)]
    if len(found) > 1:
        raise Conflict('Volume %s exists in several locations (%s): resolve the duplicate by hand before using it.'
                       % (name, ', '.join(str(b.location) for b in found)))
    return found[0] if found else None


def select_backend(candidates, size, provisioning, ratio=None, reserved_percentage=0):
    """The location with the most usable free space that passes the
    over-subscription limit and the reserve; an error lists why each failed."""
    ratio = DEFAULT_RATIO[provisioning] if ratio is None else float(ratio)
    best, best_free, reasons = None, None, []
    for backend in candidates:
        cap = backend.capacity()
        total = cap.total
        usable = cap.free - total * float(reserved_percentage) / 100.0
        provisioned = cap.provisioned + size
        if not total:
            reasons.append('%s: reports no capacity' % backend.location)
            continue
        if provisioned > total * ratio:
            reasons.append('%s: provisioning %s more would reach %.2fx its %s, above the ratio %.2f'
                           % (backend.location, naming.human_size(size), float(provisioned) / total,
                              naming.human_size(total), ratio))
            continue
        if provisioning == 'thick' and usable < size:
            reasons.append('%s: %d bytes usable after the %s%% reserve, %d needed'
                           % (backend.location, max(usable, 0), reserved_percentage, size))
            continue
        if usable <= 0:
            reasons.append('%s: no space left after the %s%% reserve' % (backend.location, reserved_percentage))
            continue
        if best is None or usable > best_free:
            best, best_free = backend, usable
    if best is None:
        raise Conflict('No location can take a %s %s volume: %s. Add space or locations, or raise '
                       'max_over_subscription_ratio / lower reserved_percentage.'
                       % (provisioning, naming.human_size(size), '; '.join(reasons)))
    return best


def place(params, candidates, size, provisioning, prefer=None):
    """Where a new volume goes: `prefer` (beside its copy's source: one
    filesystem, reflinks) when it passes the limits, else the best location."""
    limits = (params.get('max_over_subscription_ratio'), params.get('reserved_percentage') or 0)
    if len(candidates) == 1 and candidates[0].unlimited_by_default and limits == (None, 0):
        return candidates[0]      # a plain directory: no placement limits unless asked for
    if prefer is not None and prefer in candidates:
        try:
            return select_backend([prefer], size or 0, provisioning, *limits)
        except Conflict:
            pass
    return select_backend(candidates, size or 0, provisioning, *limits)


def holder(candidates, name):
    """The location of an existing volume: the one that holds it, the only
    one there is, or NotFound."""
    found = find_volume(candidates, name)
    if found is not None:
        return found
    if len(candidates) == 1:
        return candidates[0]
    raise NotFound('Volume %s is in none of the locations (%s).'
                   % (name, ', '.join(str(b.location) for b in candidates)))


def source_params(params):
    """The params that locate the source of a copy: the task's own, or
    those of source_location (a dict of the location options of any backend:
    a copy across backends, e.g. a file volume into an RBD image)."""
    other = params.get('source_location')
    if not other:
        return params
    if not isinstance(other, dict):
        raise InvalidInput('source_location must be a dict of location options (backend, volume_dir, pool, ...).')
    from ansible_collections.blockyard.storage.plugins.module_utils import common
    allowed = set(common.location_args())
    unknown = sorted(set(other) - allowed)
    if unknown:
        raise InvalidInput('source_location has unknown keys %s: use the location options of the source\'s backend '
                           '(%s).' % (', '.join(unknown), ', '.join(sorted(allowed))))
    merged = dict((k, v.get('default')) for k, v in common.location_args().items())
    merged.update(other)
    return merged


def locate(params, name):
    """(the location of existing volume name, notes on unusable locations)."""
    candidates, notes = candidate_backends(params)
    return holder(candidates, name), notes


@contextlib.contextmanager
def locked(check_mode, *holders):
    """The locks of volumes given as (backend, name) pairs, taken in one
    fixed order (none in check mode: nothing may be written)."""
    if check_mode:
        for backend, name in holders:
            backend.check_lock(name)
        yield
        return
    unique = dict((backend.lock_key(name), (backend, name)) for backend, name in holders)
    with contextlib.ExitStack() as stack:
        for key in sorted(unique):
            backend, name = unique[key]
            stack.enter_context(backend.lock(name))
        yield


def warnings_of(notes, *parts):
    warnings = ['location skipped: %s' % n for n in notes]
    seen = set()
    for part in parts:
        if part is not None and id(part) not in seen:
            seen.add(id(part))
            warnings += list(part.warnings)
    return warnings


# ------------------------------------------------------------------ volume
def copy_source(params, dest, name, fmt, provisioning, src_backend, src=None):
    """The model.Source of a copy, or None. src: the source Volume when
    already read."""
    if params.get('source_image') and params.get('source_volume'):
        raise InvalidInput('source_image and source_volume are mutually exclusive.')
    if params.get('source_snapshot') and not params.get('source_volume'):
        raise InvalidInput('source_snapshot needs source_volume (the volume the snapshot belongs to).')
    if params.get('source_image'):
        return images.image_source(params['source_image'], params.get('source_image_format'))
    if not params.get('source_volume'):
        return None
    snapshot = params.get('source_snapshot')
    src = src or src_backend.require(params['source_volume'])
    if snapshot is None and dest.can_clone_from(src_backend, src, None, fmt or 'raw',
                                                provisioning or dest.default_provisioning):
        # the destination's fast path reads the source as it is
        return Source(src_backend.data_ref(src), src.size, 'volume %s' % src.name, backend=src_backend, volume=src)
    return src_backend.plan_read(src, snapshot, purpose=name)


def copy_size(params, src):
    """What a copy given without size will hold (placement counts it); src:
    the source Volume of a copy of a volume."""
    if params.get('source_image'):
        return images.image_source(params['source_image'], params.get('source_image_format')).size
    if src is None:
        return None
    if params.get('source_snapshot'):
        snap = src.snapshot(params['source_snapshot'])
        return snap.size if snap is not None and snap.size else src.size
    return src.size


def ensure_volume(params, check_mode):
    cls = backends.get(params.get('backend') or 'file')
    state = params.get('state') or 'present'
    size = naming.parse_size(params['size']) if params.get('size') is not None else None
    fmt = params.get('format')  # None: the recorded format, raw for a new volume
    provisioning = params.get('provisioning')  # None: the recorded one, thin for a new volume
    candidates, notes = candidate_backends(params)
    candidates[0].validate_name(params['name'])
    name = params['name']
    src_backend = None
    if params.get('source_location') and not params.get('source_volume'):
        raise InvalidInput('source_location names where source_volume is: give source_volume with it.')
    if state == 'present' and params.get('source_volume'):
        src_candidates = candidates
        if params.get('source_location'):
            src_candidates, src_notes = candidate_backends(source_params(params))
            notes = notes + src_notes
        src_candidates[0].validate_name(params['source_volume'], 'source volume')
        if params.get('source_snapshot'):
            src_candidates[0].validate_snapshot_name(params['source_snapshot'])
        src_backend = holder(src_candidates, params['source_volume'])
    backend = find_volume(candidates, name)
    if backend is None:
        if state == 'absent':
            backend = candidates[0] if len(candidates) == 1 else None
        else:
            need = size
            if need is None:
                src = src_backend.require(params['source_volume']) if src_backend is not None else None
                need = copy_size(params, src)
            backend = place(params, candidates, need, provisioning or candidates[0].default_provisioning,
                            prefer=src_backend)
    if backend is None:     # absent, and in none of the locations
        return False, {'actions': [], 'volume': absent_result(name, cls.kind, None), 'location': None}, \
            {'before': {'state': 'absent'}, 'after': {'state': 'absent'}}
    holders = [(backend, name)] + ([(src_backend, params['source_volume'])] if src_backend else [])
    # a lock file with no volume is a leftover (of an interrupted run, or of
    # Cinder's delete_volume, which knows nothing of it): absent removes it
    lone_lock = state == 'absent' and backend.has_lone_lock(name)

    with locked(check_mode, *holders):
        actions = []
        if src_backend is not None and src_backend.lock_key(params['source_volume']) != backend.lock_key(name):
            actions += src_backend.recover(params['source_volume'], check_mode)
        actions += backend.recover(name, check_mode, discard_invalid=state == 'absent' and params.get('force'))
        if state == 'present':
            before = backend.load(name, fmt, size)
            if before is None:
                source = copy_source(params, backend, name, fmt, provisioning, src_backend)
                plan, _b = backend.plan_create(name, fmt or 'raw', size, provisioning or backend.default_provisioning,
                                               source)
            else:
                plan, _b = backend.plan_update(before, fmt, size, provisioning)
        else:
            plan, before = backend.plan_delete(name, params.get('force'))
            if lone_lock and not plan and before is None:
                plan.add('remove the leftover lock of volume %s' % name)
        actions += plan.actions
        if check_mode or not plan:
            after = plan.after if state == 'present' else None
        else:
            plan.execute()
            after = backend.load(name) if state == 'present' else None
    if plan.diff_changes:
        after_summary = dict(after.summary(), ownership_set=sorted(plan.diff_changes))
    else:
        after_summary = after.summary() if after else {'state': 'absent'}
    result = {'actions': actions, 'location': backend.location,
              'volume': after.to_result() if after else absent_result(name, backend.kind, backend.location)}
    warnings = warnings_of(notes, backend, src_backend) + plan.warnings
    if warnings:
        result['warnings'] = warnings
    header = '%s (%s)' % (name, backend.location)
    diff = {'before': before.summary() if before else {'state': 'absent'}, 'after': after_summary,
            'before_header': header, 'after_header': header}
    return bool(actions), result, diff


# ------------------------------------------------------------------ info
def volume_info(params):
    candidates, notes = candidate_backends(params)
    volumes, locations = [], []
    name = params.get('name')
    if name:
        candidates[0].validate_name(name)
    elif params.get('format'):
        raise InvalidInput('format applies to one volume adopted from another tool (no record of its format yet): '
                           'give name with it. A location may hold raw and qcow2 volumes side by side.')
    for backend in candidates:
        names = [name] if name else backend.list_names()
        known = {}
        for vol in names:
            if name and not backend.exists(vol):
                continue
            try:
                desc = backend.load(vol, params.get('format')).to_result()
            except Exception as exc:  # noqa: listing goes on; the broken one says why
                if name:
                    raise
                pending = backend.pending(vol)
                desc = {'name': vol, 'backend': backend.kind, 'location': backend.location, 'state': 'present',
                        'error': getattr(exc, 'msg', str(exc)), 'pending_operation': pending}
            volumes.append(desc)
            known[vol] = desc
        # for one volume, the location's own figures only: summing every
        # other volume would make it cost what a listing costs
        locations.append(backend.capacity(known, volumes=not name).to_result())
    keys = ('total_bytes', 'free_bytes', 'used_bytes', 'allocated_bytes', 'provisioned_bytes')
    total = dict((k, None if any(c[k] is None for c in locations) else sum(c[k] for c in locations)) for k in keys)
    total['apparent_over_subscription'] = (round(float(total['provisioned_bytes']) / total['total_bytes'], 4)
                                           if total['total_bytes'] and total['provisioned_bytes'] is not None
                                           else None)
    result = {'volumes': volumes, 'capacity': total, 'locations': locations,
              'volumes_by_name': dict((v['name'], v) for v in volumes)}
    if name:
        result['volume'] = volumes[0] if volumes else None
    warnings = warnings_of(notes, *candidates)
    if warnings:
        result['warnings'] = warnings
    return False, result, None


# ------------------------------------------------------------------ snapshot
def ensure_snapshot(params, check_mode):
    state = params.get('state') or 'present'
    candidates, notes = candidate_backends(params)
    volume_name = candidates[0].validate_name(params['volume'])
    snap = candidates[0].validate_snapshot_name(params['name'])
    backend = holder(candidates, volume_name)
    if state == 'reverted':
        backend.require_capability('revert_latest', 'Reverting a volume to a snapshot')
    with locked(check_mode, (backend, volume_name)):
        actions = backend.recover(volume_name, check_mode)
        planner = {'present': backend.plan_snapshot_create, 'absent': backend.plan_snapshot_delete,
                   'reverted': backend.plan_revert}[state]
        plan, before = planner(volume_name, snap)
        actions += plan.actions
        if check_mode or not plan:
            after = plan.after
        else:
            plan.execute()
            after = backend.load(volume_name)
    result = {'actions': actions, 'location': backend.location,
              'snapshot': snapshot_result(backend, after, volume_name, snap, state)}
    warnings = warnings_of(notes, backend) + plan.warnings
    if warnings:
        result['warnings'] = warnings
    before_diff = {'snapshots': before.snapshot_names if before else []}
    after_diff = {'snapshots': after.snapshot_names if after else []}
    if state == 'reverted' and plan:
        # the snapshot list does not change: say what does
        before_diff['data_since_snapshot'] = 'present'
        after_diff['data_since_snapshot'] = 'discarded'
    diff = {'before': before_diff, 'after': after_diff,
            'before_header': 'snapshots of %s' % volume_name, 'after_header': 'snapshots of %s' % volume_name}
    return bool(actions), result, diff


def snapshot_result(backend, volume, volume_name, snap, state):
    found = volume.snapshot(snap) if volume else None
    if found is None:
        return {'name': snap, 'volume': volume_name, 'location': backend.location, 'state': 'absent'}
    result = found.to_result()
    result.update(location=backend.location, state='reverted' if state == 'reverted' else 'present',
                  details=backend.snapshot_details(volume, found))
    return result
