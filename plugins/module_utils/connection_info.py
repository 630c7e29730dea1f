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
