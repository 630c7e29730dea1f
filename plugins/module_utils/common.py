# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every module shares: the location options and the run wrapper."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import traceback

from ansible_collections.blockyard.storage.plugins.module_utils import ceph, fileio
from ansible_collections.blockyard.storage.plugins.module_utils.errors import StorageError

# blockyard.storage.location: the backend
LOCATION_ARGS = dict(
    backend=dict(type='str', default='file', choices=['file', 'rbd', 'lvm']),
    # blockyard.storage.file: where the file backend keeps volumes
    volume_dir=dict(type='path'),
    share=dict(type='str'),
    shares=dict(type='list', elements='raw'),
    shares_config=dict(type='path'),
    mount_point_base=dict(type='path', default='/var/lib/blockyard/mnt'),
    cinder_compatible_names=dict(type='bool', default=False),
    # blockyard.storage.rbd: where the rbd backend keeps volumes
    pool=dict(type='str', default='rbd'),
    namespace=dict(type='str'),
    max_clone_depth=dict(type='int', default=5),
    flatten_volume_from_snapshot=dict(type='bool', default=False),
    # blockyard.storage.lvm: where the lvm backend keeps volumes
    vg=dict(type='str'),
    lvm_type=dict(type='str', default='thick', choices=['thick', 'thin']),
    thin_pool=dict(type='str'),
    volume_clear=dict(type='str', default='none', choices=['none', 'zero']),
    volume_clear_size=dict(type='int', default=0),
)
# blockyard.storage.ceph: the cluster connection (rbd backend, rbd_image)
LOCATION_ARGS.update((k, dict(v)) for k, v in ceph.CONNECTION_ARGS.items())
# blockyard.storage.location.placement: where a new volume goes (volume only)
PLACEMENT_ARGS = dict(
    max_over_subscription_ratio=dict(type='float'),
    reserved_percentage=dict(type='float', default=0.0),
)
LOCATION_EXCLUSIVE = [('volume_dir', 'share'), ('volume_dir', 'shares'), ('volume_dir', 'shares_config')]


# blockyard.storage.file.ownership
OWNERSHIP_ARGS = dict(
    owner=dict(type='str'),
    group=dict(type='str'),
    mode=dict(type='raw'),
)


def location_args(placement=False, ownership=False, **extra):
    spec = dict((k, dict(v)) for k, v in LOCATION_ARGS.items())
    for wanted, args in ((placement, PLACEMENT_ARGS), (ownership, OWNERSHIP_ARGS)):
        if wanted:
            spec.update((k, dict(v)) for k, v in args.items())
    spec.update(extra)
    return spec


def run(module, operation):
    """Call operation(params, check_mode) -> (changed, result, diff) and exit."""
    try:
        changed, result, diff = operation(module.params, module.check_mode)
    except StorageError as exc:
        module.fail_json(**exc.to_fail())
    except (OSError, IOError) as exc:  # a filesystem error is not a bug: name the file and the fix
        module.fail_json(**fileio.os_error(exc, 'A file operation').to_fail())
    except Exception as exc:  # an unexpected error still says where and why
        module.fail_json(msg='Unexpected error: %s: %s. This is a bug in blockyard.storage; please report it with '
                             'the exception.' % (type(exc).__name__, exc), exception=traceback.format_exc())
    warnings = result.pop('warnings', [])
    for warning in warnings:
        module.warn(warning)
    if diff is not None:
        # always returned (also without --diff), so a registered result can
        # be inspected; Ansible shows it only in diff mode
        result['diff'] = diff
    module.exit_json(changed=changed, **result)
