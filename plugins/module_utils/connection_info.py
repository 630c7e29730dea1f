# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""connection_info in os-brick's format (what Cinder's initialize_connection
returns and Nova hands to os-brick), built from a data reference: pure
functions, one per protocol. Secrets are never added here beyond what the
protocol carries (no Ceph key: a hypervisor reads its own keyring or a
libvirt secret named by secret_uuid)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.blockyard.storage.plugins.module_utils.errors import InvalidInput, Unsupported

# the keys of data, per driver_volume_type, as os-brick's connectors read them
RBD_KEYS = ('name', 'hosts', 'ports', 'cluster_name', 'auth_enabled', 'auth_username', 'secret_type', 'secret_uuid',
            'volume_id', 'discard')
ISCSI_KEYS = ('target_discovered', 'target_portal', 'target_iqn', 'target_lun', 'volume_id', 'auth_method',
              'auth_username', 'auth_password', 'discard')
SHARE_KEYS = ('export', 'name', 'options', 'format')
AOE_KEYS = ('target_shelf', 'target_lun')


def iscsi(portal, iqn, lun, volume_id, chap=None, iser=False, discard=True, portals=None):
    """os-brick's iscsi (or iser) connection_info of one LUN. chap: a
    targets.base.Chap (its password is part of the result: the module marks
    it no_log-capable); portals: every (portal, iqn, lun) for multipath."""
    data = {
        'target_discovered': False,
        'target_portal': portal,
        'target_iqn': iqn,
        'target_lun': int(lun),
        'volume_id': volume_id,
        'discard': bool(discard),
    }
    if chap is not None:
        data.update(auth_method='CHAP', auth_username=chap.username, auth_password=chap.password)
    if portals and len(portals) > 1:
        data['target_portals'] = [p for p, _i, _l in portals]
        data['target_iqns'] = [i for _p, i, _l in portals]
        data['target_luns'] = [int(n) for _p, _i, n in portals]
    return {'driver_volume_type': 'iser' if iser else 'iscsi', 'data': data}


def aoe(shelf, slot):
    """os-brick's aoe connection_info: the volume is /dev/etherd/e<shelf>.<slot>
    on the hypervisor (its aoe driver on the storage network)."""
    for what, value, top in (('shelf', shelf, 65534), ('slot', slot, 254)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
            raise InvalidInput('An AoE %s is 0 to %d, not %r.' % (what, top, value))
    return {'driver_volume_type': 'aoe', 'data': {'target_shelf': shelf, 'target_lun': slot}}


def share(kind, export, name, fmt, options=None, mount_point_base=None):
    """os-brick's nfs or glusterfs connection_info of a file volume: the
    share (host:/path), the active file's name and its format, and the mount
    options; mount_point_base at the top level, as Cinder returns it."""
    if kind not in ('nfs', 'glusterfs'):
        raise InvalidInput('A share connection_info is nfs or glusterfs, not %r.' % (kind,))
    if fmt not in ('raw', 'qcow2'):
        raise InvalidInput('The format of %s is %r: only raw or qcow2 can be handed out.' % (name, fmt))
    result = {'driver_volume_type': kind,
              'data': {'export': export, 'name': name, 'options': options, 'format': fmt}}
    if mount_point_base:
        result['mount_point_base'] = mount_point_base
    return result


def rbd(ref, hosts, ports, volume_id, secret_uuid=None, discard=True):
    """os-brick's rbd connection_info for the RBD DataRef `ref` (an image,
    never a snapshot), with the monitors' hosts and ports (Cluster.monitors)."""
    if ref.kind != 'rbd':
        raise InvalidInput('An rbd connection_info needs an RBD data reference, not %s (%s).'
                           % (ref.kind, ref.describe()))
    if ref.snapshot:
        raise InvalidInput('%s is a snapshot: only a volume\'s image can be attached.' % ref.describe())
    if ref.namespace:
        raise Unsupported('Volume image %s is in RBD namespace %s: os-brick\'s rbd connector reads the name as '
                          '"pool/image" and has no namespaces. Keep volumes to attach in a pool\'s default namespace.'
                          % (ref.image, ref.namespace), backend='rbd', capability='namespace_attach')
    if len(hosts) != len(ports) or not hosts:
        raise InvalidInput('The monitor map gave hosts %r and ports %r: they must be two lists of one length.'
                           % (hosts, ports))
    user = ref.cluster.get('user')
    return {
        'driver_volume_type': 'rbd',
        'data': {
            'name': '%s/%s' % (ref.pool, ref.image),
            'hosts': list(hosts),
            'ports': [str(p) for p in ports],
            'cluster_name': ref.cluster.get('cluster_name') or 'ceph',
            'auth_enabled': user is not None,
            'auth_username': user,
            'secret_type': 'ceph',
            'secret_uuid': secret_uuid,
            'volume_id': volume_id,
            'discard': bool(discard),
        },
    }
