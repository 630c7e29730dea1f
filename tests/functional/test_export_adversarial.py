# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Adversarial probes of the export module and the tgt provider: each test
asserts the SAFE behaviour, so a failing test is a finding. Runs on the tgt
lab of test_export_iscsi.py (BLOCKYARD_TGT_DIR / _PORT / _CONTROL)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import stat
import subprocess

import pytest

import contract as ct
import test_export_iscsi as ei
from ansible_collections.blockyard.storage.plugins.module_utils import exports, iscsi
from ansible_collections.blockyard.storage.plugins.module_utils.errors import (
    Busy,
    Conflict, InvalidInput, StorageError, Unsupported)
from ansible_collections.blockyard.storage.plugins.module_utils.targets import base, tgt

lab = ei.lab
eparams = ei.eparams
qemu_io = ei.qemu_io
tgt_show = ei.tgt_show
INIT_A = ei.INIT_A
PORT = ei.PORT
PREFIX = exports.DEFAULT_IQN_PREFIX


def _setup(tmp_path, name='V', size='8M', sub='v'):
    vdir = tmp_path / sub
    vdir.mkdir()
    loc = ct.FileLocation('file-dir', str(vdir))
    ct.volume(loc, name, size=size)
    return loc, os.path.join(loc.root, 'volume-%s' % name)


def _cleanup(loc, lab, secrets_dir, name='V', **kw):
    try:
        exports.ensure_export(eparams(loc, lab, secrets_dir, volume=name, state='absent', connector=None, **kw), False)
    except StorageError:
        iqn = kw.get('iqn_prefix', PREFIX) + 'volume-' + name.lower()
        try:
            iscsi.ensure_target({'iqn': iqn, 'state': 'absent', 'provider': 'tgt', 'config_dir': lab,
                                 'control_port': ei.CONTROL or None}, False)
        except StorageError:
            pass


def _snap(paths):
    out = {}
    for p in paths:
        if os.path.lexists(p):
            st = os.lstat(p)
            content = open(p, 'rb').read() if stat.S_ISREG(st.st_mode) else None
            out[p] = (st.st_mode, st.st_uid, content)
        else:
            out[p] = None
    return out


def _canary(tmp_path, content=b'canary: do not touch\n', mode=0o644):
    path = str(tmp_path / 'canary')
    with open(path, 'wb') as handle:
        handle.write(content)
    os.chmod(path, mode)
    return path


def _tgtadm(*args):
    cmd = ['tgtadm'] + (['-C', str(ei.CONTROL)] if ei.CONTROL else []) + list(args)
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)


# ------------------------------------------------------------------ data format
def test_qcow2_header_written_by_a_guest_into_a_raw_volume_is_served_raw(lab, tmp_path):
    """The format comes from the record: a raw volume whose data starts with
    a qcow2 header is exported as is, and the LUN shows that header."""
    loc, path = _setup(tmp_path)
    hdr = str(tmp_path / 'h.qcow2')
    subprocess.run(['qemu-img', 'create', '-f', 'qcow2', hdr, '1G'], check=True, stdout=subprocess.PIPE)
    subprocess.run(['dd', 'if=%s' % hdr, 'of=%s' % path, 'bs=64k', 'count=1', 'conv=notrunc'], check=True,
                   stderr=subprocess.PIPE)
    secrets_dir = str(tmp_path / 's')
    try:
        changed, result, _d = exports.ensure_export(eparams(loc, lab, secrets_dir), False)
        assert changed
        data = result['connection_info']['data']
        rc, out = qemu_io(tmp_path, data, INIT_A, 'read -v 0 16', data['auth_password'])
        assert rc == 0, out
        assert '51 46 49 fb' in out, out
        # size stays the raw size (8M), not the 1G of the planted header
        assert result['export']['target']['luns'][0]['size_mb'] == 8
        assert exports.ensure_export(eparams(loc, lab, secrets_dir), False)[0] is False
    finally:
        _cleanup(loc, lab, secrets_dir)


def test_a_data_file_larger_than_the_volume_is_refused(lab, tmp_path):
    loc, path = _setup(tmp_path)
    os.truncate(path, 16 * ei.MIB)
    secrets_dir = str(tmp_path / 's')
    shown = tgt_show()
    with pytest.raises(StorageError):
        exports.ensure_export(eparams(loc, lab, secrets_dir), False)
    assert tgt_show() == shown and not os.path.exists(secrets_dir)


def test_volume_file_replaced_by_a_symlink_is_refused(lab, tmp_path):
    loc, path = _setup(tmp_path)
    canary = _canary(tmp_path, b'\0' * (8 * ei.MIB))
    os.unlink(path)
    os.symlink(canary, path)
    secrets_dir = str(tmp_path / 's')
    shown = tgt_show()
    with pytest.raises(StorageError):
        exports.ensure_export(eparams(loc, lab, secrets_dir), False)
    assert tgt_show() == shown


# ------------------------------------------------------------------ the CHAP store
def _chap_path(secrets_dir, name='V'):
    return os.path.join(secrets_dir, (PREFIX + 'volume-' + name.lower()).replace(':', '_') + '.chap')


@pytest.mark.parametrize('kind', ['symlink', 'dangling', 'hardlink', 'fifo', 'directory'])
def test_planted_file_at_the_chap_path_is_never_followed(lab, tmp_path, kind):
    loc, _path = _setup(tmp_path)
    secrets_dir = str(tmp_path / 's')
    os.mkdir(secrets_dir, 0o700)
    canary = _canary(tmp_path, json.dumps({'username': 'attackerattacker1234', 'password': 'knownpassword123'})
                     .encode(), mode=0o600)
    chap = _chap_path(secrets_dir)
    if kind == 'symlink':
        os.symlink(canary, chap)
    elif kind == 'dangling':
        os.symlink(str(tmp_path / 'created-through-link'), chap)
    elif kind == 'hardlink':
        os.link(canary, chap)
    elif kind == 'fifo':
        os.mkfifo(chap, 0o600)
    else:
        os.mkdir(chap)
    before = _snap([canary])
    shown = tgt_show()
    try:
        with pytest.raises(StorageError):
            exports.ensure_export(eparams(loc, lab, secrets_dir), False)
        assert _snap([canary]) == before
        assert not os.path.lexists(str(tmp_path / 'created-through-link'))
        assert tgt_show() == shown
    finally:
        _cleanup(loc, lab, secrets_dir)


@pytest.mark.parametrize('kind', ['mode0644', 'owner', 'garbage', 'list', 'null', 'spacepw', 'shortpw', 'huge'])
def test_a_bad_chap_file_is_refused(lab, tmp_path, kind):
    loc, _path = _setup(tmp_path)
    secrets_dir = str(tmp_path / 's')
    os.mkdir(secrets_dir, 0o700)
    chap = _chap_path(secrets_dir)
    good = {'username': 'uuuuuuuuuuuuuuuuuuuu', 'password': 'pppppppppppppppp'}
    content = {'garbage': b'\xff\xfe not json', 'list': b'[1,2]', 'null': b'null',
               'spacepw': json.dumps(dict(good, password='with space 123456')).encode(),
               'shortpw': json.dumps(dict(good, password='short')).encode(),
               'huge': json.dumps(dict(good, pad='x' * 5000)).encode()}.get(kind, json.dumps(good).encode())
    with open(chap, 'wb') as handle:
        handle.write(content)
    os.chmod(chap, 0o644 if kind == 'mode0644' else 0o600)
    if kind == 'owner':
        os.chown(chap, 65534, 65534)
    shown = tgt_show()
    try:
        with pytest.raises(StorageError) as caught:
            exports.ensure_export(eparams(loc, lab, secrets_dir), False)
        assert 'pppppppppppppppp' not in json.dumps(caught.value.to_fail(), default=str)
        assert chap in str(caught.value)
        assert tgt_show() == shown
    finally:
        _cleanup(loc, lab, secrets_dir)


@pytest.mark.parametrize('layout', ['shared-1777', 'shared-0755', 'symlink-to-outside'])
def test_an_existing_secrets_dir_outside_is_not_chmodded(lab, tmp_path, layout):
    """secrets_dir pointing at an existing directory (an operator's /tmp, a
    shared directory, or a link to one): its mode must not be changed
    behind the operator's back (refuse, or use a 0700 subdirectory)."""
    loc, _path = _setup(tmp_path)
    shared = str(tmp_path / 'shared')
    os.mkdir(shared)
    os.chmod(shared, 0o1777 if layout == 'shared-1777' else 0o755)
    with open(os.path.join(shared, 'other-users-file'), 'w') as handle:
        handle.write('x')
    secrets_dir = shared
    if layout == 'symlink-to-outside':
        secrets_dir = str(tmp_path / 'link')
        os.symlink(shared, secrets_dir)
    mode = stat.S_IMODE(os.stat(shared).st_mode)
    try:
        try:
            exports.ensure_export(eparams(loc, lab, secrets_dir), False)
        except StorageError:
            pass
        assert stat.S_IMODE(os.stat(shared).st_mode) == mode, \
            'secrets_dir %s changed mode %o -> %o' % (shared, mode, stat.S_IMODE(os.stat(shared).st_mode))
    finally:
        _cleanup(loc, lab, secrets_dir)


# ------------------------------------------------------------------ the tgt config file
def _conf_path(lab, name='V', prefix=PREFIX):
    return os.path.join(lab, tgt.config_name(prefix + 'volume-' + name.lower()))


@pytest.mark.parametrize('kind', ['symlink', 'dangling', 'hardlink', 'fifo'])
def test_planted_file_at_the_config_path_is_never_followed(lab, tmp_path, kind):
    loc, _path = _setup(tmp_path)
    secrets_dir = str(tmp_path / 's')
    canary = _canary(tmp_path)
    conf = _conf_path(lab)
    target_of_dangling = str(tmp_path / 'created-through-link')
    if kind == 'symlink':
        os.symlink(canary, conf)
    elif kind == 'dangling':
        os.symlink(target_of_dangling, conf)
    elif kind == 'hardlink':
        # another name of a file outside (same filesystem as the lab's conf dir)
        canary = os.path.join(os.path.dirname(lab), 'adv-canary')
        with open(canary, 'wb') as handle:
            handle.write(b'canary\n')
        os.link(canary, conf)
    else:
        os.mkfifo(conf, 0o600)
    before = _snap([canary])
    shown = tgt_show()
    try:
        with pytest.raises(StorageError):
            exports.ensure_export(eparams(loc, lab, secrets_dir), False)
        assert _snap([canary]) == before
        assert not os.path.lexists(target_of_dangling)
        assert tgt_show() == shown
    finally:
        if os.path.lexists(conf):
            os.unlink(conf)
        if kind == 'hardlink':
            os.unlink(canary)
        _cleanup(loc, lab, secrets_dir)


def test_a_planted_config_file_never_keeps_its_planters_ownership(lab, tmp_path):
    """A config file of our IQN left by another user (not loaded in tgtd):
    after the export it holds our CHAP password, so it must be root's 0600,
    not the planter's."""
    loc, _path = _setup(tmp_path)
    secrets_dir = str(tmp_path / 's')
    conf = _conf_path(lab)
    with open(conf, 'w') as handle:
        handle.write('# planted\n')
    os.chown(conf, 65534, 65534)
    os.chmod(conf, 0o644)
    try:
        # refused: the password never goes into a file another user owns
        with pytest.raises(StorageError) as caught:
            exports.ensure_export(eparams(loc, lab, secrets_dir), False)
        assert 'owned by uid 65534' in caught.value.msg
        assert open(conf).read() == '# planted\n' and os.lstat(conf).st_uid == 65534
    finally:
        os.unlink(conf)
        _cleanup(loc, lab, secrets_dir)


def test_a_foreign_target_of_our_iqn_serving_another_file_is_never_taken_over(lab, tmp_path):
    """Someone loaded a target of our IQN serving another file (stand-in for
    /etc/shadow): export present and absent refuse, the foreign target is
    left as it was, no credentials are made."""
    loc, _path = _setup(tmp_path)
    secrets_dir = str(tmp_path / 's')
    canary = _canary(tmp_path, b'\0' * ei.MIB)
    iqn = PREFIX + 'volume-v'
    conf = _conf_path(lab)
    with open(conf, 'w') as handle:
        handle.write('<target %s>\n    <backing-store %s>\n        lun 1\n    </backing-store>\n'
                     '    initiator-address ALL\n</target>\n' % (iqn, canary))
    os.chmod(conf, 0o600)
    args = ['tgt-admin'] + (['-C', str(ei.CONTROL)] if ei.CONTROL else []) + ['-c', conf, '--update', iqn]
    subprocess.run(args, check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        shown = tgt_show()
        assert canary in shown
        for params in (eparams(loc, lab, secrets_dir), eparams(loc, lab, secrets_dir, state='absent'),
                       eparams(loc, lab, secrets_dir, state='absent', connector=None)):
            with pytest.raises(Conflict):
                exports.ensure_export(params, False)
            assert tgt_show() == shown
        assert not os.path.exists(secrets_dir)
        assert '<backing-store %s>' % canary in open(conf).read()
    finally:
        subprocess.run(['tgt-admin'] + (['-C', str(ei.CONTROL)] if ei.CONTROL else []) +
                       ['-c', conf, '--delete', iqn, '-f'], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       check=False)
        if os.path.lexists(conf):
            os.unlink(conf)


@pytest.mark.parametrize('kind', ['file-link', 'dir-link', 'dotdot'])
def test_iscsi_target_never_follows_a_link_to_a_lun(lab, tmp_path, kind):
    canary = _canary(tmp_path, b'\0' * ei.MIB)
    if kind == 'file-link':
        path = str(tmp_path / 'lun')
        os.symlink(canary, path)
    elif kind == 'dir-link':
        os.symlink(str(tmp_path), str(tmp_path / 'd'))
        path = str(tmp_path / 'd' / 'canary')
    else:
        (tmp_path / 'sub').mkdir()
        path = str(tmp_path / 'sub') + '/../canary'
    iqn = 'iqn.2026-11.org.blockyard.adv:link-%s' % kind
    shown = tgt_show()
    with pytest.raises(InvalidInput):
        iscsi.ensure_target({'iqn': iqn, 'state': 'present', 'provider': 'tgt', 'config_dir': lab,
                             'control_port': ei.CONTROL or None, 'luns': [{'lun': 1, 'path': path}],
                             'allow_all': True}, False)
    assert tgt_show() == shown


# ------------------------------------------------------------------ names
def test_two_volumes_differing_only_in_case_never_share_a_lun(lab, tmp_path):
    loc, path_v = _setup(tmp_path, 'V')
    ct.volume(loc, 'v', size='4M')
    subprocess.run(['qemu-io', '-f', 'raw', '-c', 'write -P 0x11 0 1M', path_v], check=True, stdout=subprocess.PIPE)
    secrets_dir = str(tmp_path / 's')
    try:
        data = exports.ensure_export(eparams(loc, lab, secrets_dir, volume='V'), False)[1]['connection_info']['data']
        shown = tgt_show()
        for state, connector in (('present', {'initiator': INIT_A}), ('absent', {'initiator': INIT_A}),
                                 ('absent', None)):
            with pytest.raises(Conflict):
                exports.ensure_export(eparams(loc, lab, secrets_dir, volume='v', state=state, connector=connector),
                                      False)
            assert tgt_show() == shown
        assert qemu_io(tmp_path, data, INIT_A, 'read -P 0x11 0 1M', data['auth_password'])[0] == 0
    finally:
        _cleanup(loc, lab, secrets_dir, 'V')


def test_a_valid_volume_name_with_underscore_can_be_exported(lab, tmp_path):
    """db_01 is a valid volume name (letters, digits, _ and -): it should be
    exportable (e.g. '_' mapped into the IQN), not refused as an iSCSI name."""
    loc, _path = _setup(tmp_path, 'db_01')
    secrets_dir = str(tmp_path / 's')
    try:
        changed, result, _d = exports.ensure_export(eparams(loc, lab, secrets_dir, volume='db_01'), False)
        assert changed and result['connection_info']['data']['target_iqn'].startswith(PREFIX)
    finally:
        _cleanup(loc, lab, secrets_dir, 'db_01')


def test_two_volumes_of_one_name_in_two_locations_get_distinct_scsi_serials(lab, tmp_path):
    """Two 'db01' volumes (two directories, two iqn_prefix) are two LUNs:
    multipath merges devices by SCSI serial, so the serials must differ."""
    loc_a, _p = _setup(tmp_path, 'db01', sub='a')
    loc_b, _p = _setup(tmp_path, 'db01', sub='b')
    prefix_b = 'iqn.2026-11.org.blockyard.b:'
    secrets_dir = str(tmp_path / 's')
    try:
        ra = exports.ensure_export(eparams(loc_a, lab, secrets_dir, volume='db01'), False)[1]
        rb = exports.ensure_export(eparams(loc_b, lab, secrets_dir, volume='db01', iqn_prefix=prefix_b), False)[1]
        sa = ra['export']['target']['luns'][0]['serial']
        sb = rb['export']['target']['luns'][0]['serial']
        assert sa != sb, 'two different LUNs share SCSI serial %s' % sa
    finally:
        _cleanup(loc_a, lab, secrets_dir, 'db01')
        _cleanup(loc_b, lab, secrets_dir, 'db01', iqn_prefix=prefix_b)


def test_odd_names_and_connectors_are_refused_clearly(lab, tmp_path):
    loc, _path = _setup(tmp_path, 'x' * 200)
    secrets_dir = str(tmp_path / 's')
    shown = tgt_show()
    with pytest.raises(InvalidInput) as caught:     # the IQN would be > 223 characters
        exports.ensure_export(eparams(loc, lab, secrets_dir, volume='x' * 200), False)
    assert '223' in str(caught.value)
    ct.volume(loc, 'W', size='4M')
    for initiator in ('iqn.1991-05.com.microsoft:HOST-A', 'iqn.2026-11.org.x:a b', 'iqn.2026-11.org.x:a\nb', ''):
        with pytest.raises(InvalidInput):
            exports.ensure_export(eparams(loc, lab, secrets_dir, volume='W', connector={'initiator': initiator}),
                                  False)
    for prefix in ('iqn.2026-11.org.x:"; rm -rf /', 'IQN.2026-11.org.x:', 'iqn.2026-11.org.x:</target>'):
        with pytest.raises(InvalidInput):
            exports.ensure_export(eparams(loc, lab, secrets_dir, volume='W', iqn_prefix=prefix), False)
    for portal in ('127.0.0.1', '127.0.0.1:0', '127.0.0.1:99999', 'host:3260', '127.0.0.1:%d x' % PORT):
        with pytest.raises(InvalidInput):
            exports.ensure_export(eparams(loc, lab, secrets_dir, volume='W', portal=portal), False)
    assert tgt_show() == shown and not os.path.exists(secrets_dir)


def test_portal_validation_refuses_impossible_addresses():
    for portal in ('300.1.1.1:3260', '1.2.3.999:3260'):
        with pytest.raises(InvalidInput):
            base.validate_portal(portal)


# ------------------------------------------------------------------ life of an exported volume
def test_an_exported_volume_is_not_grown_under_its_lun(lab, tmp_path):
    """tgt would keep announcing the old size: growing a volume that tgtd
    holds open is refused (Busy, naming tgtd), and nothing changes."""
    loc, _path = _setup(tmp_path, size='8M')
    secrets_dir = str(tmp_path / 's')
    try:
        exports.ensure_export(eparams(loc, lab, secrets_dir), False)
        listing = loc.listing()
        with pytest.raises(Busy) as caught:
            ct.volume(loc, 'V', size='16M')
        assert 'tgtd' in caught.value.msg and 'export' in caught.value.msg
        assert loc.listing() == listing
    finally:
        _cleanup(loc, lab, secrets_dir)


def test_a_snapshot_of_an_exported_volume_never_lets_the_lun_write_into_the_snapshot(lab, tmp_path):
    """After export, a snapshot makes the active file a qcow2 overlay and the
    exported file the snapshot's data: either the snapshot is refused while
    exported, or the snapshot keeps its content whatever the LUN writes."""
    loc, path = _setup(tmp_path)
    subprocess.run(['qemu-io', '-f', 'raw', '-c', 'write -P 0x5a 0 1M', path], check=True, stdout=subprocess.PIPE)
    secrets_dir = str(tmp_path / 's')
    try:
        data = exports.ensure_export(eparams(loc, lab, secrets_dir), False)[1]['connection_info']['data']
        try:
            ct.snapshot(loc, 'V', 's1')
        except StorageError:
            return      # refused while exported: safe
        rc, out = qemu_io(tmp_path, data, INIT_A, 'write -P 0xa5 0 1M', data['auth_password'])
        snap_ref = ct.data_ref(loc, 'V', 's1')
        fmt, target = ct.qemu_target(snap_ref)
        check = subprocess.run(['qemu-io', '-r', '-f', fmt, '-c', 'read -P 0x5a 0 1M', target],
                               stdout=subprocess.PIPE, universal_newlines=True, check=False)
        assert 'Pattern verification failed' not in check.stdout, \
            'the iSCSI write (rc %d) landed in snapshot s1 (%s)' % (rc, snap_ref.describe())
    finally:
        _cleanup(loc, lab, secrets_dir)


def test_remove_export_still_works_after_a_snapshot(lab, tmp_path):
    """The volume got a snapshot while exported: a re-run refuses the qcow2
    overlay (fine), but remove_export must still remove the target."""
    loc, _path = _setup(tmp_path)
    secrets_dir = str(tmp_path / 's')
    try:
        exports.ensure_export(eparams(loc, lab, secrets_dir), False)
        try:
            ct.snapshot(loc, 'V', 's1')
        except StorageError:
            return
        with pytest.raises((Unsupported, Conflict)):
            exports.ensure_export(eparams(loc, lab, secrets_dir), False)
        changed, _r, _d = exports.ensure_export(eparams(loc, lab, secrets_dir, state='absent', connector=None), False)
        assert changed and PREFIX + 'volume-v' not in tgt_show()
    finally:
        _cleanup(loc, lab, secrets_dir)


def test_deleting_an_exported_volume_is_refused_or_leaves_a_removable_export(lab, tmp_path):
    loc, _path = _setup(tmp_path)
    secrets_dir = str(tmp_path / 's')
    try:
        exports.ensure_export(eparams(loc, lab, secrets_dir), False)
        try:
            ct.volume(loc, 'V', state='absent')
        except StorageError:
            return      # refused while exported: safe
        # deleted under a live target: the export module must still be able to remove it
        exports.ensure_export(eparams(loc, lab, secrets_dir, state='absent', connector=None), False)
        assert PREFIX + 'volume-v' not in tgt_show()
        assert not os.listdir(secrets_dir)
    finally:
        _cleanup(loc, lab, secrets_dir)


# ------------------------------------------------------------------ check mode
def test_check_mode_of_every_state_writes_nothing(lab, tmp_path):
    loc, _path = _setup(tmp_path)
    secrets_dir = str(tmp_path / 's')
    init_b = ei.INIT_B

    def world():
        files = sorted(os.listdir(lab))
        secret_files = sorted(os.listdir(secrets_dir)) if os.path.exists(secrets_dir) else None
        return tgt_show(), files, secret_files, _snap([os.path.join(lab, f) for f in files])

    try:
        for state, connector in (('present', {'initiator': INIT_A}), ('present', None), ('absent', None),
                                 ('absent', {'initiator': INIT_A})):
            before = world()
            exports.ensure_export(eparams(loc, lab, secrets_dir, state=state, connector=connector), True)
            assert world() == before, (state, connector, 'no target')
        exports.ensure_export(eparams(loc, lab, secrets_dir), False)
        for state, connector in (('present', {'initiator': init_b}), ('present', None), ('absent', None),
                                 ('absent', {'initiator': INIT_A}), ('absent', {'initiator': init_b}),
                                 ('present', {'initiator': INIT_A})):
            before = world()
            exports.ensure_export(eparams(loc, lab, secrets_dir, state=state, connector=connector), True)
            assert world() == before, (state, connector, 'with target')
        # check mode with the credentials gone: no new credentials file
        os.unlink(_chap_path(secrets_dir))
        before = world()
        exports.ensure_export(eparams(loc, lab, secrets_dir, connector={'initiator': init_b}), True)
        assert world() == before
    finally:
        _cleanup(loc, lab, secrets_dir)


# ------------------------------------------------------------------ secrets in failures
def _no_password(password, *things):
    for thing in things:
        text = json.dumps(thing, default=repr) if not isinstance(thing, str) else thing
        assert password not in text, text[:2000]


def test_a_failing_tgt_admin_never_leaks_the_password(lab, tmp_path):
    """A tgt-admin that fails loudly, printing the tgtadm commands and the
    config it read (as tgt-admin -v does): the error, its details and the
    traceback text hold no password."""
    loc, _path = _setup(tmp_path)
    secrets_dir = str(tmp_path / 's')
    shim = tmp_path / 'bin'
    shim.mkdir()
    (shim / 'tgt-admin').write_text('#!/bin/sh\nfor a; do if [ -f "$a" ]; then cat "$a"; echo "tgtadm --mode '
                                    'account --op new --password $(awk \'/incominguser/{print $3}\' "$a")" >&2; fi; '
                                    'done\nexit 22\n')
    os.chmod(str(shim / 'tgt-admin'), 0o755)
    try:
        data = exports.ensure_export(eparams(loc, lab, secrets_dir), False)[1]['connection_info']['data']
        password = data['auth_password']
        old_path = os.environ['PATH']
        os.environ['PATH'] = '%s:%s' % (shim, old_path)
        try:
            with pytest.raises(StorageError) as caught:
                exports.ensure_export(eparams(loc, lab, secrets_dir, connector={'initiator': ei.INIT_B}), False)
            with pytest.raises(StorageError) as caught2:
                exports.ensure_export(eparams(loc, lab, secrets_dir, state='absent', connector=None), False)
        finally:
            os.environ['PATH'] = old_path
        for exc in (caught.value, caught2.value):
            _no_password(password, exc.to_fail(), str(exc), repr(exc.args), str(caught.getrepr()))
    finally:
        _cleanup(loc, lab, secrets_dir)


def test_bad_portal_on_rerun_never_leaks_the_password(lab, tmp_path):
    loc, _path = _setup(tmp_path)
    secrets_dir = str(tmp_path / 's')
    try:
        data = exports.ensure_export(eparams(loc, lab, secrets_dir), False)[1]['connection_info']['data']
        for portal in ('127.0.0.1:1', '10.9.9.9:%d' % PORT):
            with pytest.raises(StorageError) as caught:
                exports.ensure_export(eparams(loc, lab, secrets_dir, portal=portal), False)
            _no_password(data['auth_password'], caught.value.to_fail(), str(caught.getrepr()))
        # the result and diff of a good re-run and of detach hold it only in connection_info
        changed, result, diff = exports.ensure_export(eparams(loc, lab, secrets_dir,
                                                              connector={'initiator': ei.INIT_B}), False)
        result.pop('connection_info')
        _no_password(data['auth_password'], result, diff)
        changed, result, diff = exports.ensure_export(eparams(loc, lab, secrets_dir, state='absent'), False)
        _no_password(data['auth_password'], result, diff)
    finally:
        _cleanup(loc, lab, secrets_dir)


def test_zz_tgtd_down_gives_a_clear_error_without_the_password(lab, tmp_path):
    """Last in the file: stops the lab's tgtd and starts it again."""
    loc, _path = _setup(tmp_path)
    secrets_dir = str(tmp_path / 's')
    data = exports.ensure_export(eparams(loc, lab, secrets_dir), False)[1]['connection_info']['data']
    res = ei._lab('stop')
    assert res.returncode == 0, res.stdout
    try:
        for params in (eparams(loc, lab, secrets_dir), eparams(loc, lab, secrets_dir, state='absent', connector=None),
                       eparams(loc, lab, secrets_dir, connector={'initiator': ei.INIT_B})):
            with pytest.raises(StorageError) as caught:
                exports.ensure_export(params, False)
            msg = str(caught.value)
            assert 'tgtd' in msg and 'running' in msg, msg
            _no_password(data['auth_password'], caught.value.to_fail(), str(caught.getrepr()))
    finally:
        res = ei._lab('start')
        assert res.returncode == 0, res.stdout
        _cleanup(loc, lab, secrets_dir)
