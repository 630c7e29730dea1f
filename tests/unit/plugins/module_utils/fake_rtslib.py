# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An in-memory stand-in for rtslib_fb (python3-rtslib-fb 2.1.75) for the
LIO provider's unit tests: this host has no configfs. The classes keep
rtslib's constructor signatures, creation modes ('any', 'lookup',
'create'; LUN, MappedLUN and the storage objects create when given their
object and look up otherwise), properties and cascading delete(); nodes
live in a dict of configfs-like paths, so "rmdir" of a node with children
fails as it does in configfs. test_targets_lio checks the real rtslib has
every name used here."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import types


class RTSLibError(Exception):
    pass


class RTSLibNotInCFS(RTSLibError):
    pass


class State:
    def __init__(self):
        self.nodes = {}
        self.calls = []
        self.saved = []
        self.no_configfs = False

    def children(self, path):
        prefix = path + '/'
        return sorted(set(p[len(prefix):].split('/')[0] for p in self.nodes if p.startswith(prefix)))


S = State()


def reset():
    global S
    S = State()
    return S


class _Node(object):
    _defaults = {}

    def __init__(self):
        self._path = None

    @property
    def path(self):
        return self._path

    @property
    def exists(self):
        return self._path in S.nodes

    def _check_self(self):
        if not self.exists:
            raise RTSLibNotInCFS('This %s does not exist in configFS' % type(self).__name__)

    def _create_in_cfs_ine(self, mode):
        if mode not in ('any', 'lookup', 'create'):
            raise RTSLibError('Invalid mode: %s' % mode)
        if self.exists and mode == 'create':
            raise RTSLibError('This %s already exists in configFS' % type(self).__name__)
        if not self.exists and mode == 'lookup':
            raise RTSLibNotInCFS('No such %s in configfs: %s' % (type(self).__name__, self._path))
        if not self.exists:
            S.nodes[self._path] = {'attrib': dict(self._defaults), 'auth': {}}
            S.calls.append(('mkdir', type(self).__name__, self._path))

    def _data(self):
        self._check_self()
        return S.nodes[self._path]

    def set_attribute(self, attribute, value):
        attrib = self._data()['attrib']
        if attribute not in attrib:
            raise RTSLibError('Cannot find attribute: %s' % attribute)
        attrib[attribute] = str(value)
        S.calls.append(('attribute', self._path, attribute, str(value)))

    def get_attribute(self, attribute):
        attrib = self._data()['attrib']
        if attribute not in attrib:
            raise RTSLibError('Cannot find attribute: %s' % attribute)
        return attrib[attribute]

    def delete(self):
        if self.exists:
            if any(p.startswith(self._path + '/') for p in S.nodes):
                raise OSError(39, 'Directory not empty', self._path)
            del S.nodes[self._path]
            S.calls.append(('rmdir', type(self).__name__, self._path))


def _auth(name):
    def get(self):
        return self._data()['auth'].get(name, '')

    def put(self, value):
        value = value.strip()
        if value == 'NULL':
            raise RTSLibError("'NULL' is not a permitted value")
        if len(value) > 255:
            raise RTSLibError('Value longer than maximum length of 255')
        self._data()['auth'][name] = value
        S.calls.append(('auth', self._path, name, value))
    return property(get, put)


class _Fabric(_Node):
    def __init__(self, name):
        super(_Fabric, self).__init__()
        self.name = name
        self._path = '/' + name

    def _check_self(self):
        if not self.exists:
            self._create_in_cfs_ine('any')

    @property
    def targets(self):
        if self.exists:
            for wwn in S.children(self._path):
                yield Target(self, wwn, 'lookup')


def FabricModule(name):
    return _Fabric(name)


class RTSRoot(_Node):
    def __init__(self):
        super(RTSRoot, self).__init__()
        if S.no_configfs:
            raise RTSLibError('Cannot mount configfs')
        self._path = ''

    @property
    def targets(self):
        for fabric in S.children(''):
            if fabric != 'core':
                yield from _Fabric(fabric).targets

    @property
    def storage_objects(self):
        for plugin in S.children('/core'):
            for name in S.children('/core/' + plugin):
                yield _SO_CLASSES[plugin](name)

    def save_to_file(self, save_file=None, so_path=None):
        S.saved.append((save_file, dict((p, dict(d, attrib=dict(d['attrib']), auth=dict(d['auth'])))
                                        for p, d in S.nodes.items())))
        S.calls.append(('save', save_file))


class Target(_Node):
    def __init__(self, fabric_module, wwn=None, mode='any'):
        super(Target, self).__init__()
        self.fabric_module = fabric_module
        fabric_module._check_self()
        self.wwn = wwn
        self._path = '%s/%s' % (fabric_module.path, wwn)
        self._create_in_cfs_ine(mode)

    @property
    def tpgs(self):
        self._check_self()
        for name in S.children(self._path):
            yield TPG(self, int(name.split('_')[1]), 'lookup')

    def delete(self):
        self._check_self()
        for tpg in self.tpgs:
            tpg.delete()
        super(Target, self).delete()


class TPG(_Node):
    _defaults = {'authentication': '1', 'generate_node_acls': '0', 'demo_mode_write_protect': '1',
                 'cache_dynamic_acls': '0'}

    def __init__(self, parent_target, tag=None, mode='any'):
        super(TPG, self).__init__()
        self._tag = int(tag)
        self._parent_target = parent_target
        self._path = '%s/tpgt_%d' % (parent_target.path, self._tag)
        self._create_in_cfs_ine(mode)

    tag = property(lambda self: self._tag)
    parent_target = property(lambda self: self._parent_target)

    def _get_enable(self):
        return self._data().get('enable', False)

    def _set_enable(self, value):
        self._data()['enable'] = bool(value)
        S.calls.append(('enable', self._path, bool(value)))

    enable = property(_get_enable, _set_enable)
    chap_userid = _auth('userid')
    chap_password = _auth('password')
    chap_mutual_userid = _auth('userid_mutual')
    chap_mutual_password = _auth('password_mutual')

    @property
    def luns(self):
        self._check_self()
        for name in S.children(self._path + '/lun'):
            yield LUN(self, int(name.split('_')[1]))

    @property
    def node_acls(self):
        self._check_self()
        for wwn in S.children(self._path + '/acls'):
            yield NodeACL(self, wwn, 'lookup')

    @property
    def network_portals(self):
        self._check_self()
        for name in S.children(self._path + '/np'):
            ip, port = name.rsplit(':', 1)
            yield NetworkPortal(self, ip, int(port), 'lookup')

    def delete(self):
        self._check_self()
        self.enable = False
        for acl in self.node_acls:
            acl.delete()
        for lun in self.luns:
            lun.delete()
        for portal in self.network_portals:
            portal.delete()
        super(TPG, self).delete()


class LUN(_Node):
    MAX_TARGET_LUN = 65535

    def __init__(self, parent_tpg, lun=None, storage_object=None, alias=None):
        super(LUN, self).__init__()
        if not isinstance(parent_tpg, TPG):
            raise RTSLibError('Invalid parent TPG')
        self._parent_tpg = parent_tpg
        self._lun = int(lun)
        if not 0 <= self._lun <= self.MAX_TARGET_LUN:
            raise RTSLibError('LUN must be 0 to %d' % self.MAX_TARGET_LUN)
        self._path = '%s/lun/lun_%d' % (parent_tpg.path, self._lun)
        if storage_object is not None:
            if not storage_object.exists:
                raise RTSLibError('storage_object does not exist in configFS')
            self._create_in_cfs_ine('create')
            S.nodes[self._path]['so'] = (storage_object.plugin, storage_object.name)
        else:
            self._create_in_cfs_ine('lookup')

    lun = property(lambda self: self._lun)
    parent_tpg = property(lambda self: self._parent_tpg)

    @property
    def storage_object(self):
        plugin, name = self._data()['so']
        return _SO_CLASSES[plugin](name)

    @property
    def mapped_luns(self):
        for acl in self._parent_tpg.node_acls:
            for mlun in acl.mapped_luns:
                if mlun.tpg_lun.lun == self._lun:
                    yield mlun

    def delete(self):
        self._check_self()
        for mlun in list(self.mapped_luns):
            mlun.delete()
        super(LUN, self).delete()


class NetworkPortal(_Node):
    def __init__(self, parent_tpg, ip_address, port=3260, mode='any'):
        super(NetworkPortal, self).__init__()
        self._ip_address = str(ip_address)
        self._port = int(port)
        self._parent_tpg = parent_tpg
        self._path = '%s/np/%s:%d' % (parent_tpg.path, self._ip_address, self._port)
        if mode != 'lookup' and not self.exists:
            # the kernel (measured on Linux 6.1 in the VM tier): one socket per ip:port for all targets, so a
            # specific address and the wildcard on one port exclude each other
            wild = ('0.0.0.0', '[::]', '::')
            for other in S.nodes:
                head, _sep, tail = other.rpartition('/np/')
                if not _sep or head == parent_tpg.path or '/' in tail:
                    continue
                ip, _c, port = tail.rpartition(':')
                if int(port) == self._port and ip != self._ip_address and (ip in wild or self._ip_address in wild):
                    raise RTSLibError('Could not create NetworkPortal in configFS')
        self._create_in_cfs_ine(mode)

    ip_address = property(lambda self: self._ip_address)
    port = property(lambda self: self._port)
    parent_tpg = property(lambda self: self._parent_tpg)

    def _get_iser(self):
        return self._data().get('iser', False) if self.exists else False

    def _set_iser(self, value):
        self._data()['iser'] = bool(value)
        S.calls.append(('iser', self._path, bool(value)))

    iser = property(_get_iser, _set_iser)

    def delete(self):
        self.iser = False
        super(NetworkPortal, self).delete()


class NodeACL(_Node):
    def __init__(self, parent_tpg, node_wwn, mode='any'):
        super(NodeACL, self).__init__()
        if not isinstance(parent_tpg, TPG):
            raise RTSLibError('Invalid parent TPG')
        self._parent_tpg = parent_tpg
        self._node_wwn = node_wwn
        self._path = '%s/acls/%s' % (parent_tpg.path, node_wwn)
        self._create_in_cfs_ine(mode)

    node_wwn = property(lambda self: self._node_wwn)
    parent_tpg = property(lambda self: self._parent_tpg)
    chap_userid = _auth('userid')
    chap_password = _auth('password')
    chap_mutual_userid = _auth('userid_mutual')
    chap_mutual_password = _auth('password_mutual')

    @property
    def mapped_luns(self):
        self._check_self()
        for name in S.children(self._path):
            yield MappedLUN(self, int(name.split('_')[1]))

    def delete(self):
        self._check_self()
        for mlun in self.mapped_luns:
            mlun.delete()
        super(NodeACL, self).delete()


class MappedLUN(_Node):
    MAX_LUN = 255

    def __init__(self, parent_nodeacl, mapped_lun, tpg_lun=None, write_protect=None, alias=None):
        super(MappedLUN, self).__init__()
        if not isinstance(parent_nodeacl, NodeACL):
            raise RTSLibError('The parent_nodeacl parameter must be a NodeACL object')
        if not parent_nodeacl.exists:
            raise RTSLibError('The parent_nodeacl does not exist')
        self._parent_nodeacl = parent_nodeacl
        self._mapped_lun = int(mapped_lun)
        if not 0 <= self._mapped_lun <= self.MAX_LUN:
            raise RTSLibError('Mapped LUN must be 0 to %d' % self.MAX_LUN)
        self._path = '%s/lun_%d' % (parent_nodeacl.path, self._mapped_lun)
        if tpg_lun is not None:
            number = tpg_lun.lun if isinstance(tpg_lun, LUN) else int(tpg_lun)
            if number not in [lun.lun for lun in parent_nodeacl.parent_tpg.luns]:
                raise RTSLibError('LUN %s does not exist in this TPG' % number)
            self._create_in_cfs_ine('create')
            S.nodes[self._path]['tpg_lun'] = number
            S.nodes[self._path]['write_protect'] = bool(write_protect)
        else:
            self._create_in_cfs_ine('lookup')

    mapped_lun = property(lambda self: self._mapped_lun)
    parent_nodeacl = property(lambda self: self._parent_nodeacl)

    @property
    def tpg_lun(self):
        return LUN(self._parent_nodeacl.parent_tpg, self._data()['tpg_lun'])

    @property
    def write_protect(self):
        return self._data()['write_protect']


class _StorageObject(_Node):
    plugin_name = None
    _defaults = {'emulate_write_cache': '0'}

    def __init__(self, name, mode):
        super(_StorageObject, self).__init__()
        if '/' in name or ' ' in name:
            raise RTSLibError("A storage object's name cannot contain /, newline or spaces/tabs")
        self._name = name
        self.plugin = self.plugin_name
        self._path = '/core/%s/%s' % (self.plugin, name)
        if mode == 'create' and self.exists:
            raise RTSLibError('Storage object %s/%s exists' % (self.plugin, name))
        self._create_in_cfs_ine(mode)

    name = property(lambda self: self._name)

    @property
    def udev_path(self):
        return self._data()['dev']

    @property
    def write_back(self):
        return bool(int(self.get_attribute('emulate_write_cache')))

    @property
    def attached_luns(self):
        for target in RTSRoot().targets:
            for tpg in target.tpgs:
                for lun in tpg.luns:
                    if lun._data()['so'] == (self.plugin, self._name):
                        yield lun

    def delete(self, save=False):
        self._check_self()
        for lun in list(self.attached_luns):
            lun.delete()
        super(_StorageObject, self).delete()


class FileIOStorageObject(_StorageObject):
    plugin_name = 'fileio'

    def __init__(self, name, dev=None, size=None, wwn=None, write_back=False, aio=False, index=None):
        if dev is None:
            super(FileIOStorageObject, self).__init__(name, 'lookup')
            return
        super(FileIOStorageObject, self).__init__(name, 'create')
        if size is None:
            super(FileIOStorageObject, self).delete()
            raise RTSLibError('Path is to a file, size needed')
        S.nodes[self._path].update(dev=dev, size=int(size))
        S.calls.append(('control', self._path, 'fd_dev_name=%s,fd_dev_size=%d' % (dev, size)))
        if write_back:
            self.set_attribute('emulate_write_cache', 1)

    @property
    def size(self):
        return self._data()['size']


class BlockStorageObject(_StorageObject):
    plugin_name = 'block'

    def __init__(self, name, dev=None, wwn=None, readonly=False, write_back=False, index=None):
        if dev is None:
            super(BlockStorageObject, self).__init__(name, 'lookup')
            return
        super(BlockStorageObject, self).__init__(name, 'create')
        S.nodes[self._path].update(dev=dev)
        S.calls.append(('control', self._path, 'udev_path=%s' % dev))
        # like rtslib: write_back is accepted and ignored


_SO_CLASSES = {'fileio': FileIOStorageObject, 'block': BlockStorageObject}

# what the provider uses, for the cross-check against the real rtslib_fb
USED = {
    'RTSRoot': ['targets', 'storage_objects', 'save_to_file'],
    'Target': ['tpgs', 'delete'],
    'TPG': ['enable', 'tag', 'set_attribute', 'get_attribute', 'luns', 'node_acls', 'network_portals', 'delete',
            'chap_userid', 'chap_password', 'chap_mutual_userid', 'chap_mutual_password'],
    'LUN': ['lun', 'storage_object', 'delete'],
    'NetworkPortal': ['ip_address', 'port', 'iser', 'delete'],
    'NodeACL': ['node_wwn', 'mapped_luns', 'delete', 'chap_userid', 'chap_password', 'chap_mutual_userid',
                'chap_mutual_password'],
    'MappedLUN': ['mapped_lun', 'tpg_lun', 'delete'],
    'FileIOStorageObject': ['name', 'udev_path', 'write_back', 'size', 'attached_luns', 'set_attribute', 'delete'],
    'BlockStorageObject': ['name', 'udev_path', 'write_back', 'attached_luns', 'set_attribute', 'delete'],
}
SIGNATURES = {
    'Target.__init__': ['self', 'fabric_module', 'wwn', 'mode'],
    'TPG.__init__': ['self', 'parent_target', 'tag', 'mode'],
    'LUN.__init__': ['self', 'parent_tpg', 'lun', 'storage_object', 'alias'],
    'NetworkPortal.__init__': ['self', 'parent_tpg', 'ip_address', 'port', 'mode'],
    'NodeACL.__init__': ['self', 'parent_tpg', 'node_wwn', 'mode'],
    'MappedLUN.__init__': ['self', 'parent_nodeacl', 'mapped_lun', 'tpg_lun', 'write_protect', 'alias'],
    'FileIOStorageObject.__init__': ['self', 'name', 'dev', 'size', 'wwn', 'write_back', 'aio', 'index'],
    'BlockStorageObject.__init__': ['self', 'name', 'dev', 'wwn', 'readonly', 'write_back', 'index'],
    'RTSRoot.save_to_file': ['self', 'save_file', 'so_path'],
}
# instance attributes rtslib sets in __init__ (not visible on the class)
INSTANCE = {'Target': ['wwn'], 'FileIOStorageObject': ['plugin'], 'BlockStorageObject': ['plugin']}


def module():
    """A module object named rtslib_fb holding this fake's public names."""
    mod = types.ModuleType('rtslib_fb')
    for name in ('RTSLibError', 'RTSLibNotInCFS', 'RTSRoot', 'FabricModule', 'Target', 'TPG', 'LUN',
                 'NetworkPortal', 'NodeACL', 'MappedLUN', 'FileIOStorageObject', 'BlockStorageObject'):
        setattr(mod, name, globals()[name])
    mod.__version__ = 'fake-2.1.75'
    return mod
