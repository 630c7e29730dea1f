# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The export module over a real tgtd (scripts/tgt-lab on 127.0.0.1) with
a userspace initiator (qemu-io's iscsi driver, libiscsi): the data of a raw
file volume read and written over iSCSI, CHAP (right and wrong secrets), the
ACL (authorized and other initiators), re-runs that keep the same secret,
check mode, terminate_connection of one initiator, remove_export, and
os-brick's iscsi keys. BLOCKYARD_TGT_DIR / _PORT / _CONTROL choose the lab."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import subprocess

import pytest

import contract as ct
import snapchain as sc
from ansible_collections.blockyard.storage.plugins.module_utils import connection_info, exports

LAB = os.path.join(sc.REPO_ROOT, 'scripts', 'tgt-lab')
DIR = os.environ.get('BLOCKYARD_TGT_DIR', '/var/lib/bytgt')
PORT = int(os.environ.get('BLOCKYARD_TGT_PORT', '3260'))
CONTROL = int(os.environ.get('BLOCKYARD_TGT_CONTROL', '0'))
INIT_A = 'iqn.2026-11.org.blockyard.test:host-a'
INIT_B = 'iqn.2026-11.org.blockyard.test:host-b'
MIB = 1024 * 1024
ISCSI_KEYS = sorted(connection_info.ISCSI_KEYS)


def _lab(action):
    env = dict(os.environ, TGT_LAB_DIR=DIR, TGT_LAB_PORT=str(PORT), TGT_LAB_CONTROL=str(CONTROL))
    return subprocess.run([LAB, action], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, check=False, timeout=120)


@pytest.fixture(scope='module')
def lab():
    if os.geteuid() != 0:
        pytest.fail('tgtd needs root', pytrace=False)
    started = _lab('status').returncode != 0
    if started:
        res = _lab('start')
        assert res.returncode == 0, res.stdout
    yield os.path.join(DIR, 'conf.d')
    if started:
        _lab('stop')


def tgt_show():
    cmd = ['tgtadm', '--lld', 'iscsi', '--op', 'show', '--mode', 'target']
    if CONTROL:
        cmd[1:1] = ['-C', str(CONTROL)]
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                          check=True).stdout


def eparams(loc, conf_dir, secrets_dir, **kwargs):
    params = dict(ct.DEFAULTS, **loc.params)
    params.update(volume='V', state='present', connector={'initiator': INIT_A, 'ip': '127.0.0.1', 'host': 'a'},
                  protocol=None, target_provider='tgt', portal='127.0.0.1:%d' % PORT,
                  iqn_prefix=exports.DEFAULT_IQN_PREFIX, chap=True, secrets_dir=secrets_dir, config_dir=conf_dir,
                  control_port=CONTROL or None, saveconfig=None, secret_uuid=None)
    params.update(kwargs)
    return params


def qemu_io(tmp_path, data, initiator, command, password=None):
    """qemu-io over iSCSI as `initiator`; the CHAP password goes through a
    0600 secret file, never the command line. Returns (rc, output)."""
    opts = ['driver=iscsi', 'transport=tcp', 'portal=%s' % data['target_portal'], 'target=%s' % data['target_iqn'],
            'lun=%d' % data['target_lun'], 'initiator-name=%s' % initiator]
    argv = ['qemu-io']
    if password is not None:
        secret = tmp_path / 'chap-secret'
        secret.write_text(password)
        os.chmod(str(secret), 0o600)
        argv += ['--object', 'secret,id=sec0,file=%s' % secret]
        opts += ['user=%s' % data['auth_username'], 'password-secret=sec0']
    argv += ['--image-opts', ','.join(opts), '-c', command]
    res = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                         check=False, timeout=60)
    failed = res.returncode != 0 or 'error' in res.stdout.lower() or 'fail' in res.stdout.lower()
    return (1 if failed else 0), res.stdout


def test_export_a_raw_file_volume_over_iscsi(lab, tmp_path):
    vdir = tmp_path / 'v'
    vdir.mkdir()
    loc = ct.FileLocation('file-dir', str(vdir))
    secrets_dir = str(tmp_path / 'secrets')
    ct.volume(loc, 'V', size='8M')
    path = os.path.join(loc.root, 'volume-V')
    subprocess.run(['qemu-io', '-f', 'raw', '-c', 'write -P 0x5a 0 1M', path], check=True, stdout=subprocess.PIPE)

    changed, result, diff = exports.ensure_export(eparams(loc, lab, secrets_dir), False)
    assert changed and result['actions']
    info = result['connection_info']
    assert info['driver_volume_type'] == 'iscsi'
    data = info['data']
    assert sorted(data) == ISCSI_KEYS
    assert data['target_iqn'] == exports.DEFAULT_IQN_PREFIX + 'volume-v' and data['target_lun'] == 1
    assert data['target_portal'] == '127.0.0.1:%d' % PORT and data['auth_method'] == 'CHAP'
    assert data['volume_id'] == 'V' and data['target_discovered'] is False
    password = data['auth_password']
    assert len(password) == 16 and len(data['auth_username']) == 20
    outside = dict(result)
    outside.pop('connection_info')
    assert password not in json.dumps(outside) and password not in json.dumps(diff)
    assert diff['before'] == {'state': 'absent'} and diff['after']['initiators'] == [INIT_A]

    # the data over iSCSI, byte for byte, and a write over iSCSI lands in the file
    rc, out = qemu_io(tmp_path, data, INIT_A, 'read -P 0x5a 0 1M', password)
    assert rc == 0, out
    rc, out = qemu_io(tmp_path, data, INIT_A, 'write -P 0xa5 4M 1M', password)
    assert rc == 0, out
    check = subprocess.run(['qemu-io', '-f', 'raw', '-c', 'read -P 0xa5 4M 1M', path], stdout=subprocess.PIPE,
                           universal_newlines=True, check=False)
    assert check.returncode == 0 and 'Pattern verification failed' not in check.stdout, check.stdout
    # a wrong secret, no secret, another initiator: refused
    assert qemu_io(tmp_path, data, INIT_A, 'read 0 512', 'wrong-secret-123')[0] != 0
    assert qemu_io(tmp_path, data, INIT_A, 'read 0 512')[0] != 0
    assert qemu_io(tmp_path, data, INIT_B, 'read 0 512', password)[0] != 0

    # a re-run changes nothing and keeps the secret
    shown = tgt_show()
    listing = sorted(os.listdir(lab))
    changed, again, _d = exports.ensure_export(eparams(loc, lab, secrets_dir), False)
    assert not changed and again['actions'] == [] and again['connection_info'] == info
    assert tgt_show() == shown

    # check mode of a second host: predicted, nothing changed
    params_b = eparams(loc, lab, secrets_dir, connector={'initiator': INIT_B})
    changed, result_b, diff_b = exports.ensure_export(params_b, True)
    assert changed and result_b['actions'] and diff_b['after']['initiators'] == [INIT_A, INIT_B]
    assert tgt_show() == shown and sorted(os.listdir(lab)) == listing
    assert qemu_io(tmp_path, data, INIT_B, 'read 0 512', password)[0] != 0
    changed, result_b, _d = exports.ensure_export(params_b, False)
    assert changed and result_b['connection_info']['data']['auth_password'] == password
    assert qemu_io(tmp_path, data, INIT_B, 'read -P 0x5a 0 1M', password)[0] == 0

    # terminate_connection of host A only
    changed, result, _d = exports.ensure_export(eparams(loc, lab, secrets_dir, state='absent'), False)
    assert changed and 'connection_info' not in result
    assert qemu_io(tmp_path, data, INIT_A, 'read 0 512', password)[0] != 0
    assert qemu_io(tmp_path, data, INIT_B, 'read -P 0x5a 0 1M', password)[0] == 0
    changed, _r, _d = exports.ensure_export(eparams(loc, lab, secrets_dir, state='absent'), False)
    assert not changed

    # remove_export: the target and its credentials go, the volume stays
    changed, result, diff = exports.ensure_export(eparams(loc, lab, secrets_dir, state='absent', connector=None),
                                                  False)
    assert changed and diff['after'] == {'state': 'absent'}
    assert data['target_iqn'] not in tgt_show()
    assert os.listdir(secrets_dir) == []
    assert qemu_io(tmp_path, data, INIT_B, 'read 0 512', password)[0] != 0
    changed, _r, _d = exports.ensure_export(eparams(loc, lab, secrets_dir, state='absent', connector=None), False)
    assert not changed
    rc = subprocess.run(['qemu-io', '-f', 'raw', '-c', 'read -P 0x5a 0 1M', path], stdout=subprocess.PIPE,
                        universal_newlines=True, check=False)
    assert rc.returncode == 0 and 'Pattern verification failed' not in rc.stdout


def test_a_new_export_gets_new_credentials(lab, tmp_path):
    vdir = tmp_path / 'v'
    vdir.mkdir()
    loc = ct.FileLocation('file-dir', str(vdir))
    secrets_dir = str(tmp_path / 'secrets')
    ct.volume(loc, 'V', size='4M')
    first = exports.ensure_export(eparams(loc, lab, secrets_dir), False)[1]['connection_info']['data']
    exports.ensure_export(eparams(loc, lab, secrets_dir, state='absent', connector=None), False)
    second = exports.ensure_export(eparams(loc, lab, secrets_dir), False)[1]['connection_info']['data']
    try:
        assert second['auth_password'] != first['auth_password']
        assert qemu_io(tmp_path, second, INIT_A, 'read 0 512', first['auth_password'])[0] != 0
        assert qemu_io(tmp_path, second, INIT_A, 'read 0 512', second['auth_password'])[0] == 0
    finally:
        exports.ensure_export(eparams(loc, lab, secrets_dir, state='absent', connector=None), False)


def test_export_an_rbd_volume_through_tgt_rbd(lab, tmp_path):
    """An RBD volume as an iSCSI LUN (tgt's rbd backing store, Debian's
    tgt-rbd), for initiators that do not speak RBD: the data written through
    librbd reads back over iSCSI, and a write over iSCSI is in the image."""
    import rbd
    import cephlab
    from ansible_collections.blockyard.storage.plugins.module_utils import ceph, volumes
    cephlab.ensure()
    loc = ct.Location('rbd-default', cephlab.params(backend='rbd', pool='rbd'), 'rbd')
    name = 'exp%d' % os.getpid()
    vp = ct.vparams(loc, name, size='8M')
    secrets_dir = str(tmp_path / 'secrets')
    params = eparams(loc, lab, secrets_dir, volume=name, protocol='iscsi')
    volumes.ensure_volume(vp, False)
    try:
        ioctx = ceph.Cluster.get(loc.params).ioctx('rbd')
        with rbd.Image(ioctx, 'volume-%s' % name) as image:
            image.write(b'\x5a' * MIB, 0)
        changed, result, _d = exports.ensure_export(params, False)
        assert changed and result['export']['protocol'] == 'iscsi'
        data = result['connection_info']['data']
        assert sorted(data) == ISCSI_KEYS and data['target_lun'] == 1
        assert 'bs-type rbd' in ''.join(open(os.path.join(lab, f)).read() for f in os.listdir(lab)) or \
            'rbd' in tgt_show()
        password = data['auth_password']
        rc, out = qemu_io(tmp_path, data, INIT_A, 'read -P 0x5a 0 1M', password)
        assert rc == 0, out
        rc, out = qemu_io(tmp_path, data, INIT_A, 'write -P 0xa5 2M 1M', password)
        assert rc == 0, out
        with rbd.Image(ioctx, 'volume-%s' % name, read_only=True) as image:
            assert image.read(2 * MIB, MIB) == b'\xa5' * MIB
        changed, _r, _d = exports.ensure_export(params, False)
        assert not changed
        # the volume's own delete is refused while tgtd has the image open
        with pytest.raises(Exception) as caught:
            volumes.ensure_volume(dict(vp, state='absent'), False)
        assert 'in use' in str(caught.value)
    finally:
        exports.ensure_export(dict(params, state='absent', connector=None), False)
        volumes.ensure_volume(dict(vp, state='absent'), False)
    assert data['target_iqn'] not in tgt_show()


def test_no_secret_in_verbose_playbook_output(lab, tmp_path):
    """A real `ansible-playbook -vvv` run of the export task with no_log: the
    CHAP password reaches the registered result (written to a 0600 file by a
    no_log task, for this test to read) but appears nowhere in the output."""
    import faultkit as fk
    vdir = tmp_path / 'v'
    vdir.mkdir()
    secrets_dir = str(tmp_path / 'secrets')
    out_file = str(tmp_path / 'info.json')
    args = {'volume': 'V', 'portal': '127.0.0.1:%d' % PORT, 'config_dir': lab, 'secrets_dir': secrets_dir,
            'connector': {'initiator': INIT_A}}
    if CONTROL:
        args['control_port'] = CONTROL
    tasks = [fk.task('volume', {'name': 'V', 'size': '4M'}),
             dict(fk.task('export', args, register='exported'), no_log=True),
             dict(fk.task('export', args, register='again'), no_log=True),
             {'name': 'keep the connection_info for the test', 'no_log': True,
              'ansible.builtin.copy': {'content': '{{ exported.connection_info | to_json }}', 'dest': out_file,
                                       'mode': '0600'}},
             {'name': 'the re-run kept the secret', 'ansible.builtin.assert': {'that': [
                 'not again.changed',
                 'again.connection_info.data.auth_password == exported.connection_info.data.auth_password']}},
             dict(fk.task('export', dict(args, state='absent', connector=None)), no_log=True)]
    playbook = fk.write_playbook(str(tmp_path / 'play.yml'), str(vdir), tasks)
    argv = fk.playbook_argv(playbook)
    argv.insert(1, '-vvv')
    res = subprocess.run(argv, env=fk.ansible_env(str(tmp_path)), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         universal_newlines=True, timeout=300, check=False, cwd=str(tmp_path))
    assert res.returncode == 0, res.stdout[-3000:]
    with open(out_file) as handle:
        data = json.load(handle)['data']
    assert len(data['auth_password']) == 16
    assert data['auth_password'] not in res.stdout
    assert 'censored' in res.stdout


def test_lost_credentials_never_drop_chap(lab, tmp_path):
    vdir = tmp_path / 'v'
    vdir.mkdir()
    loc = ct.FileLocation('file-dir', str(vdir))
    secrets_dir = str(tmp_path / 'secrets')
    ct.volume(loc, 'V', size='4M')
    data = exports.ensure_export(eparams(loc, lab, secrets_dir), False)[1]['connection_info']['data']
    try:
        for entry in os.listdir(secrets_dir):
            os.unlink(os.path.join(secrets_dir, entry))
        shown = tgt_show()
        with pytest.raises(Exception) as caught:
            exports.ensure_export(eparams(loc, lab, secrets_dir, state='absent'), False)
        assert 'credentials' in str(caught.value) and 'CHAP' in str(caught.value)
        assert tgt_show() == shown
        changed, result, _d = exports.ensure_export(eparams(loc, lab, secrets_dir), False)
        assert changed and any('CHAP credentials' in w for w in result.get('warnings', []))
        new = result['connection_info']['data']
        assert new['auth_password'] != data['auth_password']
        assert qemu_io(tmp_path, new, INIT_A, 'read 0 512', data['auth_password'])[0] != 0
        assert qemu_io(tmp_path, new, INIT_A, 'read 0 512', new['auth_password'])[0] == 0
    finally:
        exports.ensure_export(eparams(loc, lab, secrets_dir, state='absent', connector=None), False)
