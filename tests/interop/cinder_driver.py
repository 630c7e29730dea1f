# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drive OpenStack Cinder's own NfsDriver (cinder 29, snapshot support on)
against a plain directory standing in for the mounted share.

Run with the interpreter of .venv-cinder (scripts/interop creates it):

    .venv-cinder/bin/python tests/interop/cinder_driver.py --state S init \
        --share 127.0.0.1:/interop --mount-point-base /tmp/x [--qcow2]
    .venv-cinder/bin/python tests/interop/cinder_driver.py --state S \
        create_volume --volume <uuid> --size 1
    .venv-cinder/bin/python tests/interop/cinder_driver.py --state S serve
        (one JSON request a line on stdin: {"op": "create_volume", "volume": ...};
         one JSON answer a line on stdout: {"ok": true, ...} or
         {"ok": false, "error": "...", "type": "ExceptionClass"})

Only the mount and the database are stubbed:
- the share counts as mounted when its mount point directory
  (<mount_point_base>/<md5(share)>, computed by os-brick as in production)
  exists;
- Volume and Snapshot rows live in the JSON state file S (save() writes it,
  get_by_id() reads it), so separate invocations agree.
Everything else is Cinder's code: qemu-img through cinder.utils.execute (as
root, euid 0: no root helper), privsep in-process, coordination locks on a
file:// backend beside the state file, and Cinder's own .info writes, which
are done as an unprivileged user (uid/gid 65534, no supplementary groups) in
a forked child, as cinder-volume writes them in production while its
commands run as root.
Online snapshot deletes (the volume attached) go through Cinder's
_delete_snapshot_online path with a stand-in for Nova's assisted delete that
does with qemu-img what libvirt does (blockRebase / blockCommit).

This file is test tooling, not part of the collection: it imports Cinder,
so it runs only in the Cinder venv. It contains none of Cinder's code.
"""

import argparse
import io
import json
import logging
import os
import subprocess
import sys
import traceback
import uuid
import warnings

UNPRIVILEGED = 65534      # cinder-volume's own user in these tests (nobody/nogroup)
CONFIG_GROUP = 'interop-nfs'


# ---------------------------------------------------------------- state file
class State(object):
    """The 'database': config, volume rows and snapshot rows, in one JSON
    file rewritten atomically after every change."""

    def __init__(self, path):
        self.path = os.path.abspath(path)
        self.data = {'config': {}, 'volumes': {}, 'snapshots': {}}
        if os.path.exists(self.path):
            with open(self.path) as handle:
                self.data = json.load(handle)

    def save(self):
        tmp = self.path + '.tmp'
        with open(tmp, 'w') as handle:
            json.dump(self.data, handle, indent=1, sort_keys=True)
        os.rename(tmp, self.path)

    @property
    def config(self):
        return self.data['config']

    def volume_row(self, volume_id):
        try:
            return self.data['volumes'][volume_id]
        except KeyError:
            raise SystemExit('cinder_driver: volume %s is not in the state file %s' % (volume_id, self.path))


# ---------------------------------------------------------------- the .info writer
class UnprivilegedWrite(io.StringIO):
    """What open(path, 'w') returns inside Cinder's remotefs module: the text
    is collected, and on close written by a forked child that has dropped to
    uid/gid 65534 (like cinder-volume, whose qemu-img/chmod/rm run as root
    but whose own open() does not)."""

    def __init__(self, path, mode):
        io.StringIO.__init__(self)
        self._path = path
        self._mode = mode
        self._done = False

    def close(self):
        if not self._done:
            self._done = True
            write_as(UNPRIVILEGED, self._path, self._mode, self.getvalue())
        io.StringIO.close(self)

    def __exit__(self, *exc):
        self.close()
        return False


def write_as(uid, path, mode, text):
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            os.close(read_end)
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            with open(path, mode) as handle:
                handle.write(text)
        except OSError as exc:
            os.write(write_end, ('%d %s' % (exc.errno or 0, exc.strerror)).encode())
            code = 1
        except BaseException as exc:  # noqa
            os.write(write_end, ('0 %r' % exc).encode())
            code = 1
        os._exit(code)
    os.close(write_end)
    message = b''
    while True:
        chunk = os.read(read_end, 4096)
        if not chunk:
            break
        message += chunk
    os.close(read_end)
    _pid, status = os.waitpid(pid, 0)
    if status != 0:
        errno_text, _sep, text = message.decode(errors='replace').partition(' ')
        raise OSError(int(errno_text or 0), '%s (writing as uid %d)' % (text, uid), path)


def remotefs_open(path, mode='r', *args, **kwargs):
    if any(c in mode for c in 'wax+'):
        if 'b' in mode or args or kwargs:
            raise AssertionError('unexpected open(%r, %r) in remotefs' % (path, mode))
        return UnprivilegedWrite(path, mode)
    return open(path, mode, *args, **kwargs)


# ---------------------------------------------------------------- Nova's part
def run(argv):
    res = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False)
    if res.returncode != 0:
        raise RuntimeError('%s failed (rc %d): %s' % (' '.join(argv), res.returncode, res.stderr.strip()))
    return res.stdout


def image_info(path):
    return json.loads(run(['qemu-img', 'info', '-U', '--output=json', path]))


class FakeNova(object):
    """Nova's assisted volume snapshot delete, done with qemu-img the way
    libvirt does it on a running guest, then the snapshot row reports
    progress 90% (what Nova tells Cinder when it is done)."""

    def __init__(self, driver, rows):
        self.driver = driver
        self.rows = rows      # snapshot id -> row dict db.snapshot_get returns

    def create_volume_snapshot(self, context, volume_id, create_info):
        raise NotImplementedError('online snapshot create is not emulated')

    def delete_volume_snapshot(self, context, snapshot_id, delete_info):
        volume = self.driver.interop_volume(delete_info['volume_id'])
        directory = self.driver._local_volume_dir(volume)
        active = os.path.join(directory, self.driver.get_active_image_from_info(volume))
        merge = delete_info['file_to_merge']
        target = delete_info['merge_target_file']
        if target is None:
            # blockRebase of the active disk: pull everything above `merge`
            # into it; merge None = pull the whole chain (no backing left)
            if merge is None:
                run(['qemu-img', 'rebase', '-f', 'qcow2', '-b', '', active])
            else:
                fmt = image_info(os.path.join(directory, merge))['format']
                run(['qemu-img', 'rebase', '-f', 'qcow2', '-b', merge, '-F', fmt, active])
        else:
            # blockCommit of `merge` into `target`; the image above `merge`
            # is re-pointed at `target` (libvirt keeps relative names)
            top = os.path.join(directory, merge)
            base = os.path.join(directory, target)
            above = None
            for name in os.listdir(directory):
                path = os.path.join(directory, name)
                if not name.startswith(volume.name) or name.endswith('.info') or not os.path.isfile(path):
                    continue
                try:
                    info = image_info(path)
                except RuntimeError:
                    continue
                if info.get('format') == 'qcow2' and info.get('backing-filename') in (merge, top):
                    above = path
            run(['qemu-img', 'commit', '-f', 'qcow2', '-b', base, top])
            if above:
                run(['qemu-img', 'rebase', '-u', '-f', 'qcow2', '-b', target, '-F', image_info(base)['format'],
                     above])
        self.rows[snapshot_id] = {'status': 'deleting', 'progress': '90%'}


# ---------------------------------------------------------------- Cinder
def setup_cinder(state):
    """Import Cinder, configure it from the state file and return the driver."""
    config = state.config
    warnings.filterwarnings('ignore', message=r'\s*Eventlet is deprecated')
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format='cinder_driver %(levelname)s %(name)s: %(message)s')
    from oslo_config import cfg
    from cinder import context, coordination, objects
    from cinder.db import api as db_api  # noqa: F401  (registers db options)
    import cinder.privsep
    from cinder.volume import configuration, driver as base_driver
    from cinder.volume.drivers import nfs, remotefs

    objects.register_all()
    conf = cfg.CONF
    conf([], project='cinder', default_config_files=[], default_config_dirs=[])
    logging.getLogger().setLevel(logging.WARNING)
    for noisy in ('cinder', 'oslo_concurrency', 'oslo_privsep', 'tooz', 'os_brick'):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    state_dir = os.path.dirname(state.path)
    lock_dir = os.path.join(state_dir, 'cinder-locks')
    os.makedirs(lock_dir, exist_ok=True)
    conf.set_override('lock_path', lock_dir, group='oslo_concurrency')
    conf.set_override('backend_url', 'file://' + lock_dir, group='coordination')
    conf.set_override('state_path', state_dir)

    # privsep in-process (we are root: no privsep-helper daemon)
    cinder.privsep.sys_admin_pctxt.set_client_mode(False)
    coordination.COORDINATOR.start()

    shares_config = os.path.join(state_dir, 'nfs_shares')
    with open(shares_config, 'w') as handle:
        handle.write(config['share'] + '\n')
    overrides = {
        'nfs_shares_config': shares_config,
        'nfs_mount_point_base': config['mount_point_base'],
        'nfs_snapshot_support': True,
        'nfs_sparsed_volumes': not config.get('thick', False),
        'nfs_qcow2_volumes': bool(config.get('qcow2', False)),
        'nas_secure_file_operations': 'false',
        'nas_secure_file_permissions': 'false',
        'max_over_subscription_ratio': '20.0',
        'reserved_percentage': 0,
        'volume_backend_name': 'interop',
    }
    driver_conf = configuration.Configuration(nfs.nfs_opts, config_group=CONFIG_GROUP)
    driver_conf.append_config_values(remotefs.nas_opts)
    driver_conf.append_config_values(remotefs.volume_opts)
    driver_conf.append_config_values(base_driver.volume_opts)
    for name, value in overrides.items():
        conf.set_override(name, value, group=CONFIG_GROUP)

    ctx = context.get_admin_context()
    snapshot_rows = {}

    # ---- the database: rows in the state file
    def volume_from_row(context_, volume_id):
        row = state.volume_row(volume_id)
        volume = objects.Volume(context=context_ or ctx, id=volume_id, size=row['size'], status=row['status'],
                                attach_status=row['attach_status'], provider_location=config['share'],
                                display_name=row.get('display_name', volume_id), volume_type_id=None,
                                encryption_key_id=None, host='interop@nfs#nfs', multiattach=False, _name_id=None)
        volume.volume_type = None
        volume.metadata = {}
        volume.admin_metadata = dict(row.get('admin_metadata', {}))
        volume.volume_attachment = objects.VolumeAttachmentList(objects=[])
        volume.obj_reset_changes()
        return volume

    def volume_save(self):
        row = state.data['volumes'].setdefault(self.id, {})
        row.update(size=self.size, status=self.status, attach_status=self.attach_status,
                   admin_metadata=dict(self.admin_metadata))
        state.save()
        self.obj_reset_changes()

    def volume_get_by_id(cls, context_, volume_id, *args, **kwargs):
        return volume_from_row(context_, volume_id)

    def snapshot_create(self):
        if not self.obj_attr_is_set('id') or self.id is None:
            self.id = str(uuid.uuid4())
        snapshot_save(self)

    def snapshot_save(self):
        state.data['snapshots'][self.id] = {'volume_id': self.volume_id, 'status': self.status,
                                            'display_name': self.display_name}
        state.save()
        self.obj_reset_changes()

    def snapshot_destroy(self):
        state.data['snapshots'].pop(self.id, None)
        state.save()

    objects.Volume.save = volume_save
    objects.Volume.get_by_id = classmethod(volume_get_by_id)
    objects.Snapshot.create = snapshot_create
    objects.Snapshot.save = snapshot_save
    objects.Snapshot.destroy = snapshot_destroy

    def snapshot_get(context_, snapshot_id):
        return snapshot_rows[snapshot_id]

    remotefs.db.snapshot_get = snapshot_get

    # ---- cinder-volume's own writes of .info, as an unprivileged user
    remotefs.open = remotefs_open

    # ---- the driver, with the mount stubbed
    class InteropNfsDriver(nfs.NfsDriver):
        def _ensure_share_mounted(self, nfs_share):
            point = self._get_mount_point_for_share(nfs_share)
            if not os.path.isdir(point):
                raise RuntimeError('stand-in mount point %s does not exist' % point)

        def interop_volume(self, volume_id):
            return volume_from_row(ctx, volume_id)

    driver = InteropNfsDriver(configuration=driver_conf, host='interop@nfs')
    # what do_setup sets, without mount.nfs and without Nova's client
    driver.configuration.nas_secure_file_permissions = 'false'
    driver.configuration.nas_secure_file_operations = 'false'
    driver.shares = {config['share']: None}
    driver._ensure_shares_mounted()
    if driver._mounted_shares != [config['share']]:
        raise RuntimeError('share %s not usable: %s' % (config['share'], driver._mounted_shares))
    driver.format = 'qcow2' if config.get('qcow2') else 'raw'
    driver._nova = FakeNova(driver, snapshot_rows)
    driver.set_initialized()
    driver.interop = dict(ctx=ctx, objects=objects, volume_from_row=volume_from_row, snapshot_rows=snapshot_rows)
    return driver


# ---------------------------------------------------------------- operations
def new_volume(driver, state, volume_id, size, status='creating'):
    if volume_id in state.data['volumes']:
        raise RuntimeError('volume %s already has a row' % volume_id)
    state.data['volumes'][volume_id] = {'size': int(size), 'status': status, 'attach_status': 'detached',
                                        'admin_metadata': {}}
    state.save()
    return driver.interop['volume_from_row'](None, volume_id)


def snapshot_object(driver, state, snapshot_id, volume, status='available'):
    objects = driver.interop['objects']
    row = state.data['snapshots'].get(snapshot_id, {})
    snap = objects.Snapshot(context=driver.interop['ctx'], id=snapshot_id, volume_id=volume.id,
                            status=status, progress='0%', volume_size=volume.size,
                            display_name=row.get('display_name', snapshot_id), encryption_key_id=None,
                            display_description=None, volume_type_id=None)
    snap.volume = volume
    snap.obj_reset_changes()
    return snap


def creating(func):
    """A create that fails leaves no row (Cinder would keep it in 'error')."""
    def wrapper(driver, state, req):
        known = req['volume'] in state.data['volumes']
        try:
            return func(driver, state, req)
        except Exception:
            if not known:
                state.__init__(state.path)
                state.data['volumes'].pop(req['volume'], None)
                state.save()
            raise
    wrapper.__name__ = func.__name__
    return wrapper


@creating
def op_create_volume(driver, state, req):
    volume = new_volume(driver, state, req['volume'], req['size'])
    update = driver.create_volume(volume)
    volume.status = 'available'
    volume.save()
    return {'model_update': update}


def op_register_volume(driver, state, req):
    """A volume made by another tool, recorded as Cinder's manage_existing
    would: size in whole GiB (rounded up), the format it was made in."""
    volume = new_volume(driver, state, req['volume'], req['size'], status='available')
    volume.admin_metadata = {'format': req.get('format', 'raw')}
    if req.get('base_format'):
        volume.admin_metadata['base_format'] = req['base_format']
    volume.save()
    for snap_id in req.get('snapshots', []):
        state.data['snapshots'][snap_id] = {'volume_id': volume.id, 'status': 'available', 'display_name': snap_id}
    state.save()
    return {}


def op_set_admin_metadata(driver, state, req):
    volume = driver.interop['volume_from_row'](None, req['volume'])
    volume.admin_metadata = dict(req['admin_metadata'])
    volume.save()
    return {}


def op_delete_volume(driver, state, req):
    volume = driver.interop['volume_from_row'](None, req['volume'])
    volume.status = 'deleting'
    driver.delete_volume(volume)
    state.data['volumes'].pop(volume.id)
    for snap_id in [s for s, row in state.data['snapshots'].items() if row['volume_id'] == volume.id]:
        state.data['snapshots'].pop(snap_id)
    state.save()
    return {}


def op_extend_volume(driver, state, req):
    volume = driver.interop['volume_from_row'](None, req['volume'])
    volume.status = 'extending'
    driver.extend_volume(volume, int(req['size']))
    volume.size = int(req['size'])
    volume.status = 'available'
    volume.save()
    return {}


def op_create_snapshot(driver, state, req):
    volume = driver.interop['volume_from_row'](None, req['volume'])
    snap = snapshot_object(driver, state, req['snapshot'], volume, status='creating')
    snap.save()
    driver.create_snapshot(snap)
    snap.status = 'available'
    snap.save()
    return {}


def op_delete_snapshot(driver, state, req):
    volume = driver.interop['volume_from_row'](None, req['volume'])
    online = bool(req.get('online'))
    if online:
        # attached: Cinder hands the merge to Nova (our FakeNova)
        volume.status, volume.attach_status = 'in-use', 'attached'
    snap = snapshot_object(driver, state, req['snapshot'], volume, status='deleting')
    driver.interop['snapshot_rows'][snap.id] = {'status': 'deleting', 'progress': '0%'}
    driver.delete_snapshot(snap)
    state.data['snapshots'].pop(snap.id, None)
    if online:
        # the guest is detached afterwards (the tests go on offline)
        state.data['volumes'][volume.id].update(status='available', attach_status='detached')
    state.save()
    return {}


@creating
def op_create_volume_from_snapshot(driver, state, req):
    source = driver.interop['volume_from_row'](None, req['source'])
    snap = snapshot_object(driver, state, req['snapshot'], source)
    volume = new_volume(driver, state, req['volume'], req.get('size') or source.size)
    update = driver.create_volume_from_snapshot(volume, snap)
    volume.status = 'available'
    volume.save()
    return {'model_update': update}


@creating
def op_create_cloned_volume(driver, state, req):
    source = driver.interop['volume_from_row'](None, req['source'])
    volume = new_volume(driver, state, req['volume'], req.get('size') or source.size)
    update = driver.create_cloned_volume(volume, source)
    volume.status = 'available'
    volume.save()
    return {'model_update': update}


def op_show(driver, state, req):
    volume = driver.interop['volume_from_row'](None, req['volume'])
    return {'row': state.volume_row(req['volume']), 'active': driver.get_active_image_from_info(volume),
            'local_path': driver.local_path(volume)}


OPS = dict((name[3:], func) for name, func in globals().items() if name.startswith('op_'))


def handle(driver, state, req):
    try:
        result = OPS[req['op']](driver, state, req)
        result['ok'] = True
        return result
    except Exception as exc:  # noqa: reported to the caller
        return {'ok': False, 'type': type(exc).__name__, 'error': str(exc),
                'traceback': traceback.format_exc()[-4000:]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--state', required=True, help='JSON state file (the database)')
    sub = parser.add_subparsers(dest='op', required=True)
    init = sub.add_parser('init', help='write the configuration into a new state file')
    init.add_argument('--share', required=True)
    init.add_argument('--mount-point-base', required=True)
    init.add_argument('--qcow2', action='store_true', help='nfs_qcow2_volumes=True')
    init.add_argument('--thick', action='store_true', help='nfs_sparsed_volumes=False')
    sub.add_parser('serve', help='JSON requests a line on stdin, answers on stdout')
    for name in sorted(OPS):
        cmd = sub.add_parser(name)
        for opt in ('volume', 'snapshot', 'source', 'size', 'format', 'base-format'):
            cmd.add_argument('--' + opt)
        cmd.add_argument('--online', action='store_true')
    args = parser.parse_args(argv)

    if args.op == 'init':
        state = State(args.state)
        state.data = {'config': {'share': args.share, 'mount_point_base': os.path.abspath(args.mount_point_base),
                                 'qcow2': args.qcow2, 'thick': args.thick},
                      'volumes': {}, 'snapshots': {}}
        state.save()
        return 0
    state = State(args.state)
    if not state.config:
        parser.error('state file %s has no configuration: run init first' % args.state)
    driver = setup_cinder(state)
    if args.op == 'serve':
        out = sys.stdout
        sys.stdout = sys.stderr      # nothing else may write into the answer stream
        out.write(json.dumps({'ok': True, 'ready': True}) + '\n')
        out.flush()
        for line in sys.stdin:
            if not line.strip():
                continue
            req = json.loads(line)
            state.__init__(state.path)     # another invocation may have changed it
            answer = handle(driver, state, req)
            out.write(json.dumps(answer) + '\n')
            out.flush()
        return 0
    req = dict((k.replace('-', '_'), v) for k, v in vars(args).items() if v not in (None, False))
    req.pop('state')
    answer = handle(driver, state, req)
    print(json.dumps(answer, indent=1))
    return 0 if answer['ok'] else 1


if __name__ == '__main__':
    sys.exit(main())
