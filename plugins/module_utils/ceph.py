# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The connection to a Ceph cluster that every Ceph-using module shares (the
doc fragment blockyard.storage.ceph documents its options), through the
`rados` and `rbd` Python bindings (Debian's python3-rados and python3-rbd):
never the CLI's text. Errors name the cluster, the cause and the fix; the
key itself never leaves the keyring file."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import re

from ansible_collections.blockyard.storage.plugins.module_utils.errors import (
    InvalidInput, MissingDependency, NotFound, StorageError)

try:
    import rados
    import rbd
    IMPORT_ERROR = None
except ImportError as _exc:     # the module says which package to install
    rados = rbd = None
    IMPORT_ERROR = _exc

PACKAGE = 'python3-rados and python3-rbd'

# blockyard.storage.ceph: the connection options of every Ceph-using module
CONNECTION_ARGS = dict(
    ceph_conf=dict(type='path', default='/etc/ceph/ceph.conf'),
    ceph_user=dict(type='str', default='admin'),
    ceph_keyring=dict(type='path'),
    cluster_name=dict(type='str', default='ceph'),
    connect_timeout=dict(type='int', default=10),
)

POOL_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$')
USER_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$')
IMAGE_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$')
# paths end up in qemu's rbd: filenames, where ':' and '@' separate options
PATH_RE = re.compile(r'^/[^:@\x00\n]*$')


def require_bindings(what='This module'):
    if IMPORT_ERROR is not None:
        try:
            from ansible.module_utils.basic import missing_required_lib
            text = missing_required_lib(PACKAGE, reason='Ceph (librados, librbd)').rstrip('.')
        except ImportError:     # outside Ansible
            text = 'Failed to import the required Python library (%s) on this host' % PACKAGE
        raise MissingDependency('%s: %s (%s). %s needs the Ceph Python bindings in the Python that runs the module on '
                                'the managed host: apt install python3-rados python3-rbd (dnf: python3-rados '
                                'python3-rbd), and run the module with that Python (ansible_python_interpreter='
                                '/usr/bin/python3).' % (what, text, IMPORT_ERROR, what), package=PACKAGE)


def check_name(value, what, pattern=POOL_RE):
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidInput('%s %r is not valid: use letters, digits, "_", "-" and "." (not first), at most %d '
                           'characters.' % (what, value, 128 if pattern is not IMAGE_RE else 200))
    return value


def settings(params):
    """The checked connection settings of the module params (a dict that
    identifies one cluster connection)."""
    conf = params.get('ceph_conf') or '/etc/ceph/ceph.conf'
    keyring = params.get('ceph_keyring')
    user = params.get('ceph_user') or 'admin'
    if user.startswith('client.'):
        user = user[len('client.'):]
    check_name(user, 'ceph_user', USER_RE)
    cluster = params.get('cluster_name') or 'ceph'
    check_name(cluster, 'cluster_name', USER_RE)
    timeout = params.get('connect_timeout')
    timeout = 10 if timeout is None else int(timeout)
    if timeout < 1 or timeout > 3600:
        raise InvalidInput('connect_timeout %r must be between 1 and 3600 seconds.' % (timeout,))
    for option, path in (('ceph_conf', conf), ('ceph_keyring', keyring)):
        if path is None:
            continue
        if not PATH_RE.match(path):
            raise InvalidInput('%s %r must be an absolute path without ":" or "@" (qemu\'s rbd driver reads them '
                               'as separators).' % (option, path))
        if not os.path.isfile(path):
            raise InvalidInput('%s %s does not exist or is not a file: give the path of the cluster\'s %s (on the '
                               'managed host).' % (option, path, 'configuration' if option == 'ceph_conf'
                                                   else 'client keyring'), path=path)
        if not os.access(path, os.R_OK):
            raise InvalidInput('%s %s is not readable by this user: run with become, or fix its permissions.'
                               % (option, path), path=path)
    return {'conf': conf, 'user': user, 'keyring': keyring, 'cluster_name': cluster, 'timeout': timeout}


def _describe(s):
    return 'Ceph cluster %s (conf %s, user client.%s)' % (s['cluster_name'], s['conf'], s['user'])


class Cluster:
    """A connected cluster handle; one per distinct settings per process."""

    _open = {}

    def __init__(self, s):
        self.settings = s
        self.description = _describe(s)
        self.handle = None
        self._fsid = None
        self._mons = None
        self._ioctxs = {}

    @classmethod
    def get(cls, params):
        require_bindings()
        s = settings(params)
        key = tuple(sorted(s.items()))
        cluster = cls._open.get(key)
        if cluster is None:
            cluster = cls(s)
            cluster.connect()
            cls._open[key] = cluster
        return cluster

    @classmethod
    def close_all(cls):
        for cluster in list(cls._open.values()):
            cluster.shutdown()
        cls._open.clear()

    def connect(self):
        s = self.settings
        conf = {'client_mount_timeout': str(s['timeout']), 'rados_mon_op_timeout': str(s['timeout']),
                'rados_osd_op_timeout': str(max(s['timeout'], 30)), 'log_to_stderr': 'false',
                'err_to_stderr': 'false'}
        if s['keyring']:
            conf['keyring'] = s['keyring']
        try:
            handle = rados.Rados(conffile=s['conf'], rados_id=s['user'], clustername=s['cluster_name'], conf=conf)
        except rados.Error as exc:
            raise InvalidInput('%s: the configuration cannot be read: %s. Check ceph_conf.' % (self.description, exc),
                               path=s['conf'])
        try:
            handle.connect(timeout=s['timeout'])
        except rados.TimedOut:
            handle.shutdown()
            raise StorageError('%s: no monitor answered within %d s (connect_timeout). Check mon_host in %s, that '
                               'the monitors run and that this host reaches them.'
                               % (self.description, s['timeout'], s['conf']), reason='timeout')
        except rados.PermissionDeniedError as exc:
            handle.shutdown()
            raise StorageError('%s: the monitors refused the key (%s). Check ceph_user and ceph_keyring (the key of '
                               'client.%s must match the cluster\'s).' % (self.description, exc, s['user']),
                               reason='auth')
        except rados.Error as exc:
            handle.shutdown()
            raise StorageError('%s: cannot connect: %s. Check ceph_conf, ceph_user, ceph_keyring and that the '
                               'monitors run.' % (self.description, exc), reason='connect')
        self.handle = handle

    def shutdown(self):
        for ioctx in self._ioctxs.values():
            try:
                ioctx.close()
            except Exception:  # noqa: closing
                pass
        self._ioctxs.clear()
        if self.handle is not None:
            try:
                self.handle.shutdown()
            except Exception:  # noqa: closing
                pass
            self.handle = None

    def ioctx(self, pool, namespace=None):
        """The I/O context of a pool (namespace), opened once per connection."""
        key = (pool, namespace or '')
        if key not in self._ioctxs:
            self._ioctxs[key] = self._open_ioctx(pool, namespace)
        return self._ioctxs[key]

    def _open_ioctx(self, pool, namespace=None):
        check_name(pool, 'pool')
        try:
            if not self.handle.pool_exists(pool):
                raise NotFound('Pool %s does not exist in %s: create it (ceph osd pool create %s; rbd pool init %s) '
                               'or name another pool.' % (pool, self.description, pool, pool), pool=pool)
            ioctx = self.handle.open_ioctx(pool)
        except rados.PermissionDeniedError as exc:
            raise StorageError('%s: client.%s may not use pool %s (%s): grant it caps (profile rbd pool=%s).'
                               % (self.description, self.settings['user'], pool, exc, pool), pool=pool)
        except rados.Error as exc:
            raise StorageError('%s: cannot open pool %s: %s' % (self.description, pool, exc), pool=pool)
        if namespace:
            check_name(namespace, 'namespace')
            if not rbd.RBD().namespace_exists(ioctx, namespace):
                ioctx.close()
                raise NotFound('Namespace %s does not exist in pool %s: create it (rbd namespace create %s/%s).'
                               % (namespace, pool, pool, namespace), pool=pool, namespace=namespace)
            ioctx.set_namespace(namespace)
        return ioctx

    def mon_command(self, command):
        ret, out, err = self.handle.mon_command(json.dumps(dict(command, format='json')), b'')
        if ret != 0:
            raise StorageError('%s: the monitor command %s failed: %s (%d)'
                               % (self.description, command['prefix'], err, ret), rc=ret)
        return json.loads(out.decode('utf-8')) if out else {}

    @property
    def fsid(self):
        if self._fsid is None:
            self._fsid = self.handle.get_fsid()
        return self._fsid

    def monitors(self):
        """([hosts], [ports]) of the monitors, from the monitor map (what
        os-brick's rbd connection_info lists)."""
        if self._mons is None:
            dump = self.mon_command({'prefix': 'mon dump'})
            hosts, ports = [], []
            for mon in dump.get('mons', []):
                addr = None
                for entry in (mon.get('public_addrs') or {}).get('addrvec', []):
                    if entry.get('type') == 'v1' or addr is None:
                        addr = entry.get('addr')
                addr = addr or (mon.get('addr') or '').split('/')[0]
                host, _sep, port = addr.rpartition(':')
                hosts.append(host.strip('[]'))
                ports.append(port)
            self._mons = (hosts, ports)
        return self._mons

    def pool_df(self, pool):
        """(stored, max_avail, quota_bytes) of a pool: the cluster's df and
        the pool's quota (0: none)."""
        df = self.mon_command({'prefix': 'df', 'detail': 'detail'})
        stats = None
        for entry in df.get('pools', []):
            if entry.get('name') == pool:
                stats = entry.get('stats', {})
        if stats is None:
            raise NotFound('Pool %s is not in the df of %s.' % (pool, self.description))
        quota = self.mon_command({'prefix': 'osd pool get-quota', 'pool': pool})
        return (int(stats.get('stored', stats.get('bytes_used', 0))), int(stats.get('max_avail', 0)),
                int(quota.get('quota_max_bytes', 0) or 0), int(stats.get('bytes_used', 0)))


def data_cluster(s):
    """The cluster part of a DataRef (what a reader needs to connect): never
    the key, only the keyring path."""
    return {'conf': s['conf'], 'user': s['user'], 'keyring': s['keyring'], 'cluster_name': s['cluster_name']}


def rbd_error(exc, doing, what):
    """A StorageError for a librbd/librados exception while `doing` on `what`."""
    if rbd is not None and isinstance(exc, rbd.ImageNotFound) or rados is not None and isinstance(
            exc, rados.ObjectNotFound):
        return NotFound('%s %s: it does not exist (%s).' % (doing, what, exc))
    if rbd is not None and isinstance(exc, (rbd.ImageBusy, rbd.ImageHasSnapshots)):
        from ansible_collections.blockyard.storage.plugins.module_utils.errors import Busy
        return Busy('%s %s: it is in use (%s): close its users (watchers, clones) first.' % (doing, what, exc))
    if rados is not None and isinstance(exc, rados.PermissionDeniedError):
        return StorageError('%s %s: permission denied (%s): check the caps of ceph_user.' % (doing, what, exc))
    if rados is not None and isinstance(exc, rados.NoSpace) or rbd is not None and isinstance(exc, rbd.NoSpace):
        return StorageError('%s %s: the cluster or the pool quota is full (%s): free space or raise the quota.'
                            % (doing, what, exc), reason='nospace')
    return StorageError('%s %s failed: %s: %s' % (doing, what, type(exc).__name__, exc))
