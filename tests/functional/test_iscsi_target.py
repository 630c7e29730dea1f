# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""iscsi_target with provider tgt against a real tgtd (scripts/tgt-lab) and
userspace initiators (libiscsi's iscsi-* tools and qemu's iscsi driver), no
mocks: data both ways, CHAP, the initiator ACL, allow_all, re-runs, check
mode, removal, bad input, and secrets kept out of results, diffs, errors and
`ansible-playbook -v` output.

The lab: BLOCKYARD_TGT_DIR / BLOCKYARD_TGT_PORT / BLOCKYARD_TGT_CONTROL
(defaults /var/lib/bytgt, 3260, 0); started here when it does not answer,
and then stopped at the end."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import shutil
import stat
import subprocess

import pytest

from ansible_collections.blockyard.storage.plugins.module_utils import iscsi
from ansible_collections.blockyard.storage.plugins.module_utils.errors import Conflict, InvalidInput, StorageError
from ansible_collections.blockyard.storage.plugins.module_utils.targets import tgt

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
LAB = os.path.join(ROOT, 'scripts', 'tgt-lab')
VENV = os.path.join(ROOT, '.venv')

PREFIX = 'iqn.2026-11.org.blockyard.test:'
GOOD = 'iqn.2026-11.org.blockyard.test:initiator-good'
OTHER = 'iqn.2026-11.org.blockyard.test:initiator-other'
PASSWORD = 'Xq7pLm2vRt9wKz4s'       # the secrets the tests look for everywhere
MUTUAL = 'Mu7tuAlPw3Yx8Qe2'
WRONG = 'Wr0ngPassw0rd123'
SIZE = 8 * 1024 * 1024


@pytest.fixture(autouse=True, scope='module')
def _requirements():
    """A missing requirement fails the tests (it is not a pass)."""
    if os.geteuid() != 0 or not shutil.which('tgtd') or not shutil.which('iscsi-inq'):
        pytest.fail('needs root, tgt and libiscsi-bin (bindep.txt, make install)', pytrace=False)


def _env():
    env = dict(os.environ)
    env.update(TGT_LAB_DIR=os.environ.get('BLOCKYARD_TGT_DIR', '/var/lib/bytgt'),
               TGT_LAB_PORT=os.environ.get('BLOCKYARD_TGT_PORT', '3260'),
               TGT_LAB_CONTROL=os.environ.get('BLOCKYARD_TGT_CONTROL', '0'))
    return env


class Lab:
    def __init__(self):
        env = _env()
        self.env = env
        self.conf_d = os.path.join(env['TGT_LAB_DIR'], 'conf.d')
        self.port = int(env['TGT_LAB_PORT'])
        self.control = int(env['TGT_LAB_CONTROL'])
        self.portal = '127.0.0.1:%d' % self.port

    def tgtadm(self, *args):
        res = subprocess.run(['tgtadm', '-C', str(self.control)] + list(args), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, universal_newlines=True, check=False)
        return res

    def show(self):
        return self.tgtadm('--lld', 'iscsi', '--op', 'show', '--mode', 'target').stdout

    def state(self):
        """Everything the module could change: the include directory (names,
        modes, contents), tgtd's targets and its accounts."""
        files = {}
        for name in sorted(os.listdir(self.conf_d)):
            path = os.path.join(self.conf_d, name)
            st = os.lstat(path)
            with open(path, 'rb') as handle:
                files[name] = (stat.S_IMODE(st.st_mode), handle.read())
        accounts = self.tgtadm('--lld', 'iscsi', '--mode', 'account', '--op', 'show').stdout
        return files, self.show(), accounts


@pytest.fixture(scope='module')
def lab():
    env = _env()
    started = False
    if subprocess.run([LAB, 'status'], env=env, stdout=subprocess.DEVNULL, check=False).returncode != 0:
        subprocess.run([LAB, 'start'], env=env, check=True, stdout=subprocess.DEVNULL)
        started = True
    try:
        yield Lab()
    finally:
        if started:
            subprocess.run([LAB, 'stop'], env=env, check=False)


@pytest.fixture
def disk(tmp_path):
    """A raw file of SIZE bytes holding random data, and its real path."""
    path = os.path.realpath(str(tmp_path / 'disk.img'))
    with open(path, 'wb') as handle:
        handle.write(os.urandom(SIZE))
    return path


@pytest.fixture
def iqn(request, lab):
    """A target name of its own per test, removed afterwards."""
    name = PREFIX + request.node.name.lower().replace('_', '-').replace('[', '.').replace(']', '')[:80]
    yield name
    try:
        iscsi.ensure_target(params(lab, name, state='absent'), False)
    except StorageError:
        pass


def params(lab, iqn, **kwargs):
    result = dict(iqn=iqn, state='present', provider='tgt', portals=None, luns=[], initiators=[], allow_all=False,
                  chap=None, iser=False, config_dir=lab.conf_d, control_port=lab.control, write_cache=None)
    result.update(kwargs)
    return result


def chap(password=PASSWORD, **more):
    return dict(dict(username='byuser-' + password[:4].lower(), password=password), **more)


def ensure(lab, iqn, check_mode=False, **kwargs):
    return iscsi.ensure_target(params(lab, iqn, **kwargs), check_mode)


def login(lab, iqn, initiator, user=None, password=None, lun=1):
    """iscsi-readcapacity16 as `initiator`: (rc, output). The password goes
    through libiscsi's LIBISCSI_CHAP_PASSWORD, never on a command line."""
    url = 'iscsi://%s%s/%s/%d' % ('%s@' % user if user else '', lab.portal, iqn, lun)
    env = dict(os.environ)
    env.pop('LIBISCSI_CHAP_PASSWORD', None)
    if password:
        env['LIBISCSI_CHAP_PASSWORD'] = password
    res = subprocess.run(['iscsi-readcapacity16', '-i', initiator, url], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, universal_newlines=True, env=env, timeout=60, check=False)
    return res.returncode, res.stdout


def qemu_opts(lab, iqn, initiator, user=None, secret_file=None):
    opts = ('driver=iscsi,transport=tcp,portal=%s,target=%s,lun=1,initiator-name=%s'
            % (lab.portal, iqn, initiator))
    objects = []
    if user:
        opts += ',user=%s,password-secret=sec0' % user
        objects = ['--object', 'secret,id=sec0,file=%s' % secret_file]
    return objects, opts


def secret_file(tmp_path, password):
    path = str(tmp_path / 'chap.secret')
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, 'w') as handle:
        handle.write(password)
    return path


def assert_no_secret(*values):
    text = json.dumps(values, default=repr)
    for secret in (PASSWORD, MUTUAL):
        assert secret not in text


# --- data ------------------------------------------------------------------

def test_file_lun_data_both_ways(lab, iqn, disk, tmp_path):
    changed, result, diff = ensure(lab, iqn, luns=[{'lun': 1, 'path': disk}], initiators=[GOOD], chap=chap())
    assert changed
    assert_no_secret(result, diff)
    target = result['target']
    assert [(lun['lun'], lun['kind'], lun['path']) for lun in target['luns']] == [(1, 'file', disk)]
    assert target['chap_username'] == chap()['username'] and target['chap_password_set'] is True
    assert target['initiators'] == [GOOD] and target['allow_all'] is False
    secret = secret_file(tmp_path, PASSWORD)
    objects, opts = qemu_opts(lab, iqn, GOOD, chap()['username'], secret)
    # the file's data, read over iSCSI, byte for byte
    copy = str(tmp_path / 'copy.raw')
    subprocess.run(['qemu-img', 'convert'] + objects + ['--image-opts', opts, '-O', 'raw', copy], check=True,
                   timeout=120)
    with open(disk, 'rb') as one, open(copy, 'rb') as two:
        assert one.read() == two.read()
    # a write over iSCSI lands in the file
    subprocess.run(['qemu-io'] + objects + ['--image-opts', opts, '-c', 'write -P 0x5a 1M 64k', '-c', 'flush'],
                   check=True, stdout=subprocess.DEVNULL, timeout=120)
    with open(disk, 'rb') as handle:
        handle.seek(1024 * 1024)
        assert handle.read(65536) == b'\x5a' * 65536


# --- CHAP and ACL ------------------------------------------------------------

def test_chap_right_secret_in_wrong_refused(lab, iqn, disk):
    ensure(lab, iqn, luns=[{'lun': 1, 'path': disk}], allow_all=True, chap=chap())
    user = chap()['username']
    rc, out = login(lab, iqn, GOOD, user, PASSWORD)
    assert rc == 0 and 'Total size:%d' % SIZE in out, out
    rc, out = login(lab, iqn, GOOD, user, WRONG)
    assert rc != 0 and 'Authentication failure' in out, out
    rc, out = login(lab, iqn, GOOD)
    assert rc != 0, out


def test_password_change_takes_effect(lab, iqn, disk):
    """tgt-admin keeps tgtd's old account (and password): the provider resets it."""
    ensure(lab, iqn, luns=[{'lun': 1, 'path': disk}], allow_all=True, chap=chap())
    changed, result, diff = ensure(lab, iqn, luns=[{'lun': 1, 'path': disk}], allow_all=True,
                                   chap=dict(chap(), password=MUTUAL))
    assert changed and diff['after'].get('chap_password') == '******** (changed)'
    assert_no_secret(result, diff)
    user = chap()['username']
    assert login(lab, iqn, GOOD, user, PASSWORD)[0] != 0
    assert login(lab, iqn, GOOD, user, MUTUAL)[0] == 0


def test_acl_authorized_iqn_only(lab, iqn, disk):
    ensure(lab, iqn, luns=[{'lun': 1, 'path': disk}], initiators=[GOOD])
    rc, out = login(lab, iqn, GOOD)
    assert rc == 0, out
    rc, out = login(lab, iqn, OTHER)
    assert rc != 0 and 'Target not found' in out, out
    # discovery does not show it to the other initiator either
    listing = subprocess.run(['iscsi-ls', '-i', OTHER, 'iscsi://%s' % lab.portal], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, universal_newlines=True, check=False).stdout
    assert iqn not in listing
    assert 'ACL information:\n        0.0.0.0/32\n        %s' % GOOD in lab.show()


def test_empty_acl_admits_nobody(lab, iqn, disk):
    ensure(lab, iqn, luns=[{'lun': 1, 'path': disk}])
    for initiator in (GOOD, OTHER):
        rc, out = login(lab, iqn, initiator)
        assert rc != 0, out


def test_initiator_name_alone_restricts_nothing(lab, iqn, disk):
    """The measured tgt behaviour the provider works around: a config with
    only `initiator-name` gets tgt-admin's implicit `initiator-address ALL`,
    and tgt admits an initiator when any rule matches."""
    path = os.path.join(lab.conf_d, 'by-hand.conf.test')
    with open(path, 'w') as handle:
        handle.write('<target %s>\n    <backing-store %s>\n        lun 1\n    </backing-store>\n'
                     '    initiator-name %s\n</target>\n' % (iqn, disk, GOOD))
    try:
        subprocess.run(['tgt-admin', '-C', str(lab.control), '-c', path, '--update', iqn], check=True)
        assert 'ACL information:\n        ALL\n        %s' % GOOD in lab.show()
        rc, out = login(lab, iqn, OTHER)
        assert rc == 0, out
    finally:
        os.unlink(path)
        subprocess.run(['tgt-admin', '-C', str(lab.control), '--delete', iqn, '-f'], check=False)


def test_allow_all(lab, iqn, disk):
    _changed, result, _diff = ensure(lab, iqn, luns=[{'lun': 1, 'path': disk}], allow_all=True)
    assert result['target']['allow_all'] is True
    for initiator in (GOOD, OTHER):
        rc, out = login(lab, iqn, initiator)
        assert rc == 0, out


def test_mutual_chap_and_options_bound(lab, iqn, disk, tmp_path):
    other = str(tmp_path / 'second.img')
    with open(other, 'wb') as handle:
        handle.truncate(SIZE)
    _c, result, diff = ensure(lab, iqn, luns=[{'lun': 1, 'path': disk}, {'lun': 2, 'path': other}],
                              initiators=[GOOD], write_cache=False,
                              chap=chap(mutual_username='bymutual', mutual_password=MUTUAL))
    assert_no_secret(result, diff)
    target = result['target']
    assert target['mutual_chap_username'] == 'bymutual' and target['write_cache'] is False
    serials = [lun['serial'] for lun in target['luns']]
    assert len(set(serials)) == 2 and all(s.startswith('by') for s in serials)
    assert 'bymutual (outgoing)' in lab.show()
    # fewer LUNs: LUN 2 goes
    changed, result, _d = ensure(lab, iqn, luns=[{'lun': 1, 'path': disk}], initiators=[GOOD], write_cache=False,
                                 chap=chap(mutual_username='bymutual', mutual_password=MUTUAL))
    assert changed and [lun['lun'] for lun in result['target']['luns']] == [1]


# --- idempotence, check mode, removal ---------------------------------------

def test_rerun_changes_nothing(lab, iqn, disk):
    kwargs = dict(luns=[{'lun': 1, 'path': disk}], initiators=[GOOD], chap=chap(), write_cache=True)
    assert ensure(lab, iqn, **kwargs)[0]
    state = lab.state()
    changed, result, diff = ensure(lab, iqn, **kwargs)
    assert not changed and result['actions'] == [] and diff['before'] == diff['after']
    assert lab.state() == state


def test_check_mode_changes_nothing(lab, iqn, disk, tmp_path):
    kwargs = dict(luns=[{'lun': 1, 'path': disk}], initiators=[GOOD], chap=chap())
    state = lab.state()
    changed, result, diff = ensure(lab, iqn, check_mode=True, **kwargs)
    assert changed and len(result['actions']) == 2 and diff['before'] is None
    assert result['target']['luns'] == [{'lun': 1, 'kind': 'file', 'path': disk}]
    assert lab.state() == state
    ensure(lab, iqn, **kwargs)
    state = lab.state()
    # a change and a removal, in check mode
    other = dict(kwargs)
    other['initiators'] = [OTHER]
    assert ensure(lab, iqn, check_mode=True, **other)[0]
    assert lab.state() == state
    changed, result, _diff = ensure(lab, iqn, check_mode=True, state='absent')
    assert changed and result['target'] is None
    assert lab.state() == state
    assert login(lab, iqn, GOOD, chap()['username'], PASSWORD)[0] == 0


def test_absent_removes_idempotently(lab, iqn, disk):
    ensure(lab, iqn, luns=[{'lun': 1, 'path': disk}], chap=chap(), allow_all=True)
    changed, result, diff = ensure(lab, iqn, state='absent')
    assert changed and len(result['actions']) == 2 and diff['after'] is None
    assert iqn not in lab.show()
    assert tgt.config_name(iqn) not in os.listdir(lab.conf_d)
    # tgtd forgets the account (and its password) too
    assert chap()['username'] not in lab.tgtadm('--lld', 'iscsi', '--mode', 'account', '--op', 'show').stdout
    changed, result, _diff = ensure(lab, iqn, state='absent')
    assert not changed and result['actions'] == []
    assert os.path.getsize(disk) == SIZE   # the data stays


def test_target_lost_by_tgtd_is_recreated(lab, iqn, disk):
    kwargs = dict(luns=[{'lun': 1, 'path': disk}], initiators=[GOOD])
    ensure(lab, iqn, **kwargs)
    subprocess.run(['tgt-admin', '-C', str(lab.control), '--delete', iqn, '-f'], check=True)
    changed, result, _diff = ensure(lab, iqn, **kwargs)
    # the config file is unchanged: only tgtd is told again
    assert changed and result['actions'] == ['Create target %s in tgtd (tgt-admin --update)' % iqn]
    assert login(lab, iqn, GOOD)[0] == 0


def test_config_file_is_private(lab, iqn, disk):
    ensure(lab, iqn, luns=[{'lun': 1, 'path': disk}], chap=chap(), allow_all=True)
    st = os.stat(os.path.join(lab.conf_d, tgt.config_name(iqn)))
    assert stat.S_IMODE(st.st_mode) == 0o600


# --- bad input ---------------------------------------------------------------

def _bad_cases(disk, tmp_path):
    directory = str(tmp_path)
    link = str(tmp_path / 'link.img')
    os.symlink(disk, link)
    fifo = str(tmp_path / 'fifo')
    os.mkfifo(fifo)
    lun = [{'lun': 1, 'path': disk}]
    return {
        'bad_iqn': (dict(iqn='IQN.bad name'), 'not a valid iSCSI name'),
        'lun0': (dict(luns=[{'lun': 0, 'path': disk}]), 'numbered from 1'),
        'missing': (dict(luns=[{'lun': 1, 'path': disk + '.missing'}]), 'No such file'),
        'directory': (dict(luns=[{'lun': 1, 'path': directory}]), 'a directory'),
        'symlink': (dict(luns=[{'lun': 1, 'path': link}]), 'symbolic link'),
        'fifo': (dict(luns=[{'lun': 1, 'path': fifo}]), 'neither a regular file'),
        'relative': (dict(luns=[{'lun': 1, 'path': 'disk.img'}]), 'absolute path'),
        'twice': (dict(luns=lun + [{'lun': 2, 'path': disk}]), 'two LUNs'),
        'bad_portal': (dict(luns=lun, portals=['127.0.0.1']), 'is not ip:port'),
        'portal_not_listening': (dict(luns=lun, portals=['127.0.0.1:1']), 'listens on'),
        'allow_all_and_initiators': (dict(luns=lun, allow_all=True, initiators=[GOOD]), 'one or the other'),
        'bad_initiator': (dict(luns=lun, initiators=['nope']), 'not a valid iSCSI name'),
        'short_password': (dict(luns=lun, chap=chap(password='short')), '12 to 255'),
    }


@pytest.mark.parametrize('case', ['bad_iqn', 'lun0', 'missing', 'directory', 'symlink', 'fifo', 'relative', 'twice',
                                  'bad_portal', 'portal_not_listening', 'allow_all_and_initiators', 'bad_initiator',
                                  'short_password'])
def test_bad_input_is_refused_and_changes_nothing(lab, iqn, disk, tmp_path, case):
    kwargs, message = _bad_cases(disk, tmp_path)[case]
    state = lab.state()
    with pytest.raises(InvalidInput) as caught:
        iscsi.ensure_target(dict(params(lab, iqn), **kwargs), False)
    assert message in caught.value.msg
    assert lab.state() == state


def test_tgt_failure_is_clear_rolled_back_and_secret_free(lab, iqn, disk):
    """A backing store another target exports: tgt-admin skips it and exits
    0; the verification says so, and the new target is removed again."""
    first = iqn + '-first'
    try:
        ensure(lab, first, luns=[{'lun': 1, 'path': disk}], allow_all=True)
        state = lab.state()
        with pytest.raises(Conflict) as caught:
            ensure(lab, iqn, luns=[{'lun': 1, 'path': disk}], chap=chap(), allow_all=True)
        assert 'LUN 1 (%s) is missing' % disk in caught.value.msg
        assert 'another target already exports' in caught.value.msg
        assert_no_secret(caught.value.msg, caught.value.details)
        assert lab.state() == state
    finally:
        ensure(lab, first, state='absent')


def test_chap_user_of_another_target_is_refused(lab, iqn, disk, tmp_path):
    other = str(tmp_path / 'other.img')
    open(other, 'wb').close()
    os.truncate(other, SIZE)
    first = iqn + '-first'
    try:
        ensure(lab, first, luns=[{'lun': 1, 'path': disk}], chap=chap(), allow_all=True)
        with pytest.raises(Conflict) as caught:
            ensure(lab, iqn, luns=[{'lun': 1, 'path': other}],
                   chap=chap(password=MUTUAL, username=chap()['username']))
        assert 'already bound to target %s' % first in caught.value.msg
        assert_no_secret(caught.value.msg, caught.value.details)
    finally:
        ensure(lab, first, state='absent')


# --- secrets through Ansible -------------------------------------------------

PLAYBOOK = '''
- hosts: localhost
  gather_facts: false
  vars:
    common: &common
      iqn: {iqn}
      config_dir: {conf_d}
      control_port: {control}
  tasks:
    - blockyard.storage.iscsi_target:
        <<: *common
        luns: [{{lun: 1, path: {disk}}}]
        initiators: [{good}]
        chap: {{username: byplay, password: {password}, mutual_username: byplaym, mutual_password: {mutual}}}
      register: made
    - blockyard.storage.iscsi_target:
        <<: *common
        luns: [{{lun: 1, path: {disk}}}]
        initiators: [{good}]
        chap: {{username: byplay, password: {password}, mutual_username: byplaym, mutual_password: {mutual}}}
      register: again
    - ansible.builtin.assert:
        that: [made is changed, again is not changed, made.target.chap_password_set]
    - name: A failure with the password in the task
      blockyard.storage.iscsi_target:
        <<: *common
        luns: [{{lun: 0, path: {disk}}}]
        chap: {{username: byplay, password: {password}}}
      ignore_errors: true
    - ansible.builtin.debug:
        var: made
    - blockyard.storage.iscsi_target:
        <<: *common
        state: absent
'''


@pytest.mark.parametrize('verbosity', ['-v', '-vvv'])
def test_ansible_playbook_output_holds_no_secret(lab, iqn, disk, tmp_path, verbosity):
    playbook = str(tmp_path / 'play.yml')
    with open(playbook, 'w') as handle:
        handle.write(PLAYBOOK.format(iqn=iqn, conf_d=lab.conf_d, control=lab.control, disk=disk, good=GOOD,
                                     password=PASSWORD, mutual=MUTUAL))
    env = dict(os.environ, ANSIBLE_NOCOLOR='1', ANSIBLE_RETRY_FILES_ENABLED='0', ANSIBLE_LOCALHOST_WARNING='0',
               ANSIBLE_INVENTORY_UNPARSED_WARNING='0', ANSIBLE_LOCAL_TEMP=str(tmp_path / 'tmp'),
               ANSIBLE_PYTHON_INTERPRETER=os.path.join(VENV, 'bin', 'python'))
    res = subprocess.run([os.path.join(VENV, 'bin', 'ansible-playbook'), verbosity, '-i', 'localhost,', '-c',
                          'local', playbook], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True, env=env, timeout=300, check=False)
    output = res.stdout + res.stderr
    assert res.returncode == 0, output
    assert 'numbered from 1' in output and 'chap_password_set' in output
    assert PASSWORD not in output and MUTUAL not in output
    assert iqn not in lab.show()
    # nor in tgtd's log
    with open(os.path.join(os.path.dirname(lab.conf_d), 'tgtd.log')) as handle:
        log = handle.read()
    assert PASSWORD not in log and MUTUAL not in log


# --- RBD LUNs through tgt-rbd (the provider, as the export module uses it) ---

def _tgt_has_rbd(lab):
    return 'rbd' in lab.tgtadm('--op', 'show', '--mode', 'sys').stdout.split('Backing stores:')[-1]


def test_rbd_lun_through_tgt_rbd(lab, iqn, tmp_path):
    if not _tgt_has_rbd(lab) or not shutil.which('ceph-mon'):
        pytest.fail('needs tgt-rbd and the Ceph lab (bindep.txt, make install)', pytrace=False)
    import cephlab
    from ansible_collections.blockyard.storage.plugins.module_utils.model import DataRef
    from ansible_collections.blockyard.storage.plugins.module_utils.targets.base import Lun, TargetSpec
    conf = cephlab.ensure()
    image = 'tgt-%s' % os.urandom(4).hex()
    rbd = ['rbd', '-c', conf, '--keyring', cephlab.ADMIN_KEYRING]
    subprocess.run(rbd + ['create', '%s/%s' % (cephlab.POOL, image), '--size', '16M'], check=True)
    provider = tgt.TgtProvider(dict(config_dir=lab.conf_d, control_port=lab.control))
    try:
        ref = DataRef('rbd', 'raw', 16 << 20, pool=cephlab.POOL, image=image,
                      cluster={'conf': conf, 'user': 'admin'})
        spec = TargetSpec(iqn, luns=[Lun(1, ref, serial='byrbd-lun1')], initiators=[GOOD])
        plan, before = provider.plan_ensure(spec)
        assert before is None and len(plan.actions) == 2
        plan.execute()
        target = provider.read(iqn)
        assert target['luns'][0]['kind'] == 'rbd' and target['luns'][0]['image'] == image
        assert target['luns'][0]['serial'] == 'byrbd-lun1'
        assert not provider.plan_ensure(spec)[0]          # re-run: nothing to do
        # a write over iSCSI lands in the image
        _objects, opts = qemu_opts(lab, iqn, GOOD)
        subprocess.run(['qemu-io', '--image-opts', opts, '-c', 'write -P 0xa7 2M 128k', '-c', 'flush'],
                       check=True, stdout=subprocess.DEVNULL, timeout=120)
        exported = str(tmp_path / 'export.raw')
        subprocess.run(rbd + ['export', '%s/%s' % (cephlab.POOL, image), exported], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(exported, 'rb') as handle:
            handle.seek(2 << 20)
            assert handle.read(128 << 10) == b'\xa7' * (128 << 10)
        # what tgt-rbd cannot do is refused before anything changes
        state = lab.state()
        spaced = DataRef('rbd', 'raw', 16 << 20, pool=cephlab.POOL, namespace='ns1', image=image,
                         cluster={'conf': conf})
        with pytest.raises(StorageError) as caught:
            provider.plan_ensure(TargetSpec(iqn, luns=[Lun(1, spaced)]))
        assert 'namespaces are not supported' in caught.value.msg
        mixed = DataRef('file', 'raw', SIZE, path=str(tmp_path))
        with pytest.raises(StorageError) as caught:
            provider.plan_ensure(TargetSpec(iqn, luns=[Lun(1, ref), Lun(2, mixed)]))
        assert 'mixes RBD and file' in caught.value.msg
        assert lab.state() == state
        plan, _before = provider.plan_remove(iqn)
        plan.execute()
        assert iqn not in lab.show()
    finally:
        subprocess.run(['tgt-admin', '-C', str(lab.control), '--delete', iqn, '-f'], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(rbd + ['rm', '%s/%s' % (cephlab.POOL, image)], check=False, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
