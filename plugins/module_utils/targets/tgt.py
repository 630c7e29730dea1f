# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The tgt (Linux SCSI target framework, tgtd) iSCSI target provider.

One configuration file per target in an include directory (config_dir,
default /etc/tgt/conf.d, which Debian's /etc/tgt/targets.conf includes, so
targets come back when tgtd restarts), written atomically with mode 0600
(it holds the CHAP passwords), then `tgt-admin -c <that file> --update
<iqn>` (with `-C <control_port>` for a tgtd started with -C), then verified
against what `tgtadm --lld iscsi --op show --mode target` reports: tgt-admin
exits 0 in cases where it did not do what the file says (a backing store
already used by another target is skipped silently; a target with
connected initiators is not updated without --force).

ACLs, measured with tgtd 1.0.85 and libiscsi initiators (tests/functional/
test_iscsi_target.py holds the proof): tgt admits an initiator when ANY rule
of the target's ACL matches, by address (initiator-address) OR by name
(initiator-name), and tgt-admin binds `initiator-address ALL` whenever the
config names no address. So `initiator-name` alone restricts nothing (the
implicit ALL admits everybody). An IQN-only ACL is written as the names plus
`initiator-address 0.0.0.0/32`, an address no initiator can connect from:
the listed IQNs log in, any other IQN is refused ("Target not found", 515;
discovery does not list the target either), and with no names nobody gets
in. allow_all writes `initiator-address ALL`.

Secrets: the passwords are in the config file (0600) and tgt-admin hands
them to tgtadm on its command line (`--mode account --op new --password
...`) for the moment that command runs: a tgt limitation, tgtadm has no
other way to take a password (its only channel to tgtd is argv -> the IPC
socket). Everything this provider runs passes them to runner.run as secrets,
so no error, result or diff shows them; tgt-admin is never run with -v
(which prints the tgtadm commands)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import hashlib
import os
import re
import stat

from ansible_collections.blockyard.storage.plugins.module_utils import fileio, runner
from ansible_collections.blockyard.storage.plugins.module_utils.errors import (CommandFailed, Conflict, InvalidInput,
                                                                               Unsupported)
from ansible_collections.blockyard.storage.plugins.module_utils.plan import Plan
from ansible_collections.blockyard.storage.plugins.module_utils.targets.base import Provider

DEFAULT_CONFIG_DIR = '/etc/tgt/conf.d'
# the ACL rule that matches no initiator (see the module docstring)
NOBODY = '0.0.0.0/32'
HEADER = '# Managed by blockyard.storage (iscsi_target): edits are overwritten.\n'
# what a config value may hold (tgt-admin parses the file with Config::General)
UNSAFE_CHARS = re.compile(r'[\s<>"\'#\\;]')
SERIAL_RE = re.compile(r'^[A-Za-z0-9_-]{1,36}$')


def config_name(iqn):
    # ':' is not allowed in every tool's file names; '@' never occurs in an IQN, so the mapping is one-to-one
    return iqn.replace(':', '@') + '.conf'


def default_serial(iqn, number):
    """A stable SCSI serial unique to (target, LUN): tgt's default
    (beaf1<lun>) is the same on every target, which confuses multipath."""
    return 'by' + hashlib.sha256(('%s/%d' % (iqn, number)).encode('utf-8')).hexdigest()[:18]


def parse_show(text):
    """`tgtadm --lld iscsi --op show --mode target` as {iqn: {tid, driver,
    state, sessions, luns {n: {type, path, bstype, serial, size}}, accounts
    [(user, outgoing)], acl [...]}}."""
    targets = {}
    current = section = lun = None
    for raw in text.splitlines():
        line = raw.strip()
        match = re.match(r'^Target (\d+): (\S+)$', raw)
        if match:
            current = {'tid': int(match.group(1)), 'iqn': match.group(2), 'driver': None, 'state': None,
                       'sessions': 0, 'luns': {}, 'accounts': [], 'acl': []}
            targets[current['iqn']] = current
            section = lun = None
            continue
        if current is None or not line:
            continue
        indent = len(raw) - len(raw.lstrip())
        if indent == 4 and line.endswith(':'):
            section = line[:-1]
            lun = None
            continue
        if section == 'System information':
            if line.startswith('Driver:'):
                current['driver'] = line.split(':', 1)[1].strip()
            elif line.startswith('State:'):
                current['state'] = line.split(':', 1)[1].strip()
        elif section == 'I_T nexus information':
            if line.startswith('I_T nexus:'):
                current['sessions'] += 1
        elif section == 'LUN information':
            if line.startswith('LUN:'):
                lun = {}
                current['luns'][int(line.split(':', 1)[1])] = lun
            elif lun is not None and ':' in line:
                key, value = [part.strip() for part in line.split(':', 1)]
                key = {'Type': 'type', 'SCSI SN': 'serial', 'Size': 'size', 'Backing store type': 'bstype',
                       'Backing store path': 'path', 'Backing store flags': 'flags'}.get(key)
                if key:
                    lun[key] = value
        elif section == 'Account information':
            if line.endswith(' (outgoing)'):
                current['accounts'].append((line[:-len(' (outgoing)')], True))
            else:
                current['accounts'].append((line, False))
        elif section == 'ACL information':
            current['acl'].append(line)
    return targets


def parse_config(text):
    """What one of our config files says, as far as read() needs it (the
    passwords only to redact them and to compare)."""
    found = {'passwords': [], 'write_cache': None, 'incoming': None, 'outgoing': None}
    for line in (text or '').splitlines():
        words = line.split()
        if len(words) == 3 and words[0] in ('incominguser', 'outgoinguser'):
            found['incoming' if words[0] == 'incominguser' else 'outgoing'] = words[1]
            found['passwords'].append(words[2])
        elif len(words) == 2 and words[0] == 'write-cache':
            found['write_cache'] = words[1] == 'on'
    return found


class TgtProvider(Provider):
    name = 'tgt'
    first_lun = 1           # LUN 0 is tgt's controller
    package = 'tgt'

    def __init__(self, params):
        Provider.__init__(self, params)
        self.config_dir = params.get('config_dir') or DEFAULT_CONFIG_DIR
        port = params.get('control_port')
        self.control = ['-C', str(int(port))] if port is not None else []
        if not os.path.isabs(self.config_dir):
            raise InvalidInput('config_dir %r must be an absolute path.' % (self.config_dir,))

    # --- commands ---------------------------------------------------------

    def _run(self, cmd, what, secrets=(), **kwargs):
        return runner.run(cmd, what=what, secrets=list(secrets), **kwargs)

    def show(self, secrets=()):
        result = self._run(['tgtadm'] + self.control + ['--lld', 'iscsi', '--op', 'show', '--mode', 'target'],
                           'Listing the targets of tgtd%s (is tgtd running%s?)'
                           % (self._where(), ' with -C %s' % self.control[1] if self.control else ''),
                           secrets=secrets, timeout=60)
        return parse_show(result.stdout)

    def listening_portals(self):
        result = self._run(['tgtadm'] + self.control + ['--op', 'show', '--mode', 'portal'],
                           'Listing the portals tgtd%s listens on' % self._where(), timeout=60)
        return [m.group(1) for m in re.finditer(r'^Portal: (\S+),\d+$', result.stdout, re.M)]

    def accounts(self):
        result = self._run(['tgtadm'] + self.control + ['--lld', 'iscsi', '--mode', 'account', '--op', 'show'],
                           'Listing the CHAP accounts of tgtd%s' % self._where(), timeout=60)
        return [line.strip() for line in result.stdout.splitlines()[1:] if line.strip()]

    def _delete_account(self, user):
        # tgtadm deletes an account by name: no password on its command line
        self._run(['tgtadm'] + self.control + ['--lld', 'iscsi', '--mode', 'account', '--op', 'delete',
                                               '--user', user],
                  'Deleting the CHAP account %s from tgtd%s' % (user, self._where()), timeout=60)

    def _drop_accounts(self, users, secrets):
        """Delete the accounts `users` that no target binds any more: tgtd
        keeps an account (and its password) after its target is gone."""
        if not users:
            return
        shown = self.show(secrets=secrets)
        bound = set(user for target in shown.values() for user, _out in target['accounts'])
        existing = self.accounts()
        for user in sorted(users):
            if user in existing and user not in bound:
                self._delete_account(user)

    def _where(self):
        return ' (control port %s)' % self.control[1] if self.control else ''

    # --- the config file --------------------------------------------------

    def config_path(self, iqn):
        return os.path.join(self.config_dir, config_name(iqn))

    def read_config(self, iqn):
        """The config file's text, or None when absent (a link, a directory
        or a FIFO in its place is refused)."""
        path = self.config_path(iqn)
        try:
            fd, _st = fileio.open_regular(path, what='the tgt configuration of %s' % iqn)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return None
            raise
        try:
            chunks = []
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(fd)
        return b''.join(chunks).decode('utf-8', 'replace')

    def render(self, spec):
        lines = [HEADER, '<target %s>\n' % spec.iqn]
        if spec.iser:
            lines.append('    driver iser\n')
        kinds = set(lun.ref.kind == 'rbd' for lun in spec.luns)
        if kinds == set([True]):
            # tgt-admin skips a backing store that is not an existing path unless the TARGET's bs-type is rbd
            # (it ignores the backing-store block's own for that test): measured with tgt 1.0.85
            lines.append('    bs-type rbd\n')
        elif len(kinds) > 1:
            raise Unsupported('Target %s mixes RBD and file or device LUNs: tgt-admin takes the target-wide bs-type to '
                              'tell an RBD image from a missing file, so with tgt give RBD LUNs a target of their own.'
                              % spec.iqn)
        for lun in sorted(spec.luns, key=lambda item: item.number):
            ref = lun.ref
            if ref.kind == 'rbd':
                if ref.namespace:
                    raise Unsupported('LUN %d of %s: RBD namespaces are not supported by tgt-rbd (it opens '
                                      'pool/image only): use an image outside a namespace, or provider lio.'
                                      % (lun.number, spec.iqn))
                if ref.snapshot:
                    raise Unsupported('LUN %d of %s: tgt-rbd cannot export an RBD snapshot (%s); export a clone.'
                                      % (lun.number, spec.iqn, ref.describe()))
                store = '%s/%s' % (ref.pool, ref.image)
                opts = []
                if ref.cluster.get('conf'):
                    opts.append('conf=%s' % ref.cluster['conf'])
                if ref.cluster.get('user'):
                    opts.append('id=%s' % ref.cluster['user'])
                bstype = 'rbd'
            else:
                store, opts, bstype = ref.path, [], 'rdwr'
            for value in [store] + opts:
                if not value or UNSAFE_CHARS.search(value):
                    raise InvalidInput('LUN %d of %s: %r cannot be written into a tgt configuration (no spaces, '
                                       'quotes, <, >, #, ; or backslashes).' % (lun.number, spec.iqn, value))
            serial = lun.serial or default_serial(spec.iqn, lun.number)
            if not SERIAL_RE.match(serial):
                raise InvalidInput('LUN %d of %s: serial %r: use 1 to 36 letters, digits, - and _.'
                                   % (lun.number, spec.iqn, serial))
            lines.append('    <backing-store %s>\n' % store)
            lines.append('        lun %d\n' % lun.number)
            lines.append('        bs-type %s\n' % bstype)
            if opts:
                lines.append('        bsopts "%s"\n' % ';'.join(opts))
            lines.append('        scsi_sn %s\n' % serial)
            if spec.write_cache is not None:
                lines.append('        write-cache %s\n' % ('on' if spec.write_cache else 'off'))
            lines.append('    </backing-store>\n')
        if spec.allow_all:
            lines.append('    initiator-address ALL\n')
        else:
            # initiator-name alone would admit everybody: see the module docstring
            lines.append('    initiator-address %s\n' % NOBODY)
            for name in spec.initiators:
                lines.append('    initiator-name %s\n' % name)
        if spec.chap is not None:
            lines.append('    incominguser %s %s\n' % (spec.chap.username, spec.chap.password))
        if spec.mutual_chap is not None:
            lines.append('    outgoinguser %s %s\n' % (spec.mutual_chap.username, spec.mutual_chap.password))
        lines.append('</target>\n')
        return ''.join(lines)

    # --- read -------------------------------------------------------------

    def read(self, iqn, shown=None, config=None):
        if shown is None:
            shown = self.show(secrets=parse_config(self.read_config(iqn))['passwords'])
        if config is None:
            config = self.read_config(iqn)
        target = shown.get(iqn)
        if target is None:
            return None
        parsed = parse_config(config)
        luns = []
        for number in sorted(target['luns']):
            lun = target['luns'][number]
            if lun.get('type') == 'controller':
                continue
            entry = {'lun': number, 'backing_store_type': lun.get('bstype'), 'serial': lun.get('serial')}
            size = re.match(r'^(\d+) MB, Block size: (\d+)$', lun.get('size') or '')
            if size:
                entry.update(size_mb=int(size.group(1)), block_size=int(size.group(2)))
            path = lun.get('path')
            if lun.get('bstype') == 'rbd':
                entry['kind'] = 'rbd'
                entry['pool'], _sep, entry['image'] = (path or '').partition('/')
            else:
                entry['path'] = path
                try:
                    entry['kind'] = 'block' if stat.S_ISBLK(os.stat(path).st_mode) else 'file'
                except (OSError, TypeError):
                    entry['kind'] = 'file'
            luns.append(entry)
        incoming = [user for user, outgoing in target['accounts'] if not outgoing]
        outgoing = [user for user, out in target['accounts'] if out]
        acl = target['acl']
        return {
            'iqn': iqn,
            'tid': target['tid'],
            'state': target['state'],
            'luns': luns,
            'initiators': sorted(rule for rule in acl if rule.startswith(('iqn.', 'eui.'))),
            'addresses': sorted(rule for rule in acl if not rule.startswith(('iqn.', 'eui.'))),
            'allow_all': 'ALL' in acl,
            'chap_username': incoming[0] if incoming else None,
            'mutual_chap_username': outgoing[0] if outgoing else None,
            'chap_password_set': bool(incoming) and parsed['incoming'] is not None,
            'portals': self.listening_portals(),
            'iser': target['driver'] == 'iser',
            'write_cache': parsed['write_cache'],
            'sessions': target['sessions'],
            'config_file': self.config_path(iqn) if config is not None else None,
        }

    # --- verify -----------------------------------------------------------

    def problems(self, spec, target):
        """What differs between tgtd's view of the target and spec."""
        if target is None:
            return ['target %s is not in tgtd' % spec.iqn]
        found = []
        luns = dict((n, lun) for n, lun in target['luns'].items() if lun.get('type') != 'controller')
        for lun in spec.luns:
            have = luns.pop(lun.number, None)
            ref = lun.ref
            want_path = '%s/%s' % (ref.pool, ref.image) if ref.kind == 'rbd' else ref.path
            want_type = 'rbd' if ref.kind == 'rbd' else 'rdwr'
            if have is None:
                found.append('LUN %d (%s) is missing' % (lun.number, want_path))
                continue
            if have.get('path') != want_path or have.get('bstype') != want_type:
                found.append('LUN %d is %s (%s), not %s (%s)'
                             % (lun.number, have.get('path'), have.get('bstype'), want_path, want_type))
            serial = lun.serial or default_serial(spec.iqn, lun.number)
            if have.get('serial') != serial:
                found.append('LUN %d has serial %s, not %s' % (lun.number, have.get('serial'), serial))
        for number in sorted(luns):
            found.append('LUN %d (%s) is not in the spec' % (number, luns[number].get('path')))
        acl = set([('ALL' if spec.allow_all else NOBODY)] + ([] if spec.allow_all else spec.initiators))
        if set(target['acl']) != acl:
            found.append('the ACL is %s, not %s' % (sorted(target['acl']), sorted(acl)))
        accounts = set()
        if spec.chap is not None:
            accounts.add((spec.chap.username, False))
        if spec.mutual_chap is not None:
            accounts.add((spec.mutual_chap.username, True))
        if set(target['accounts']) != accounts:
            found.append('the CHAP accounts bound are %s, not %s'
                         % (sorted(u + (' (outgoing)' if o else '') for u, o in target['accounts']),
                            sorted(u + (' (outgoing)' if o else '') for u, o in accounts)))
        driver = 'iser' if spec.iser else 'iscsi'
        if target['driver'] != driver:
            found.append('the driver is %s, not %s' % (target['driver'], driver))
        return found

    def verify(self, spec):
        shown = self.show(secrets=spec.secrets())
        found = self.problems(spec, shown.get(spec.iqn))
        if found:
            target = shown.get(spec.iqn)
            hint = ''
            if target is not None and target['sessions']:
                hint = (' The target has %d connected session(s): tgt-admin --update leaves a target in use '
                        'unchanged; log the initiators out and re-run.' % target['sessions'])
            elif any('missing' in text for text in found):
                hint = (' tgt-admin skips a backing store that another target already exports, and one that '
                        'tgtd cannot open (see its log).')
            raise Conflict('tgt did not apply the configuration of %s (%s): %s.%s'
                           % (spec.iqn, self.config_path(spec.iqn), '; '.join(found), hint), iqn=spec.iqn)

    def check_portals(self, spec):
        if not spec.portals:
            return
        listening = self.listening_portals()
        for portal in spec.portals:
            host, _sep, port = portal.rpartition(':')
            wild = ['0.0.0.0:%s' % port, '[::]:%s' % port]
            if portal not in listening and not any(w in listening for w in wild):
                raise InvalidInput('Portal %s: tgtd%s listens on %s only. tgt serves every target on the portals '
                                   'tgtd was started with (--iscsi portal=ip:port, e.g. in /etc/default/tgt): '
                                   'change them there, or leave portals unset.'
                                   % (portal, self._where(), ', '.join(listening) or 'no portal'))

    # --- plans ------------------------------------------------------------

    def _update(self, iqn, secrets, reset=(), stale=()):
        """tgt-admin --update. tgt-admin does not change the password of an
        account tgtd already has (`account new` fails, it goes on and binds
        the old one: measured), so the accounts whose password may change are
        deleted first (a target bound elsewhere was refused by plan_ensure)
        and created again by tgt-admin; the accounts the target no longer
        uses are deleted after."""
        existing = self.accounts() if reset else []
        for user in sorted(reset):
            if user in existing:
                self._delete_account(user)
        self._run(['tgt-admin'] + self.control + ['-c', self.config_path(iqn), '--update', iqn],
                  'Applying the tgt configuration of %s (%s)' % (iqn, self.config_path(iqn)),
                  secrets=secrets, timeout=120)
        self._drop_accounts(stale, secrets)

    def _restore(self, iqn, old, secrets, users=(), existed=False):
        """Undo of a failed ensure: the previous config file and target; a
        target this run created is deleted (one that tgtd had without a
        config file of ours is left as it is now: its old setup is unknown)."""
        path = self.config_path(iqn)
        if old is None:
            if not existed:
                self._delete(iqn, secrets)
            fileio.unlink(path)
            self._drop_accounts(set(users), secrets)
        else:
            fileio.atomic_write(path, old, mode=0o600)
            parsed = parse_config(old)
            old_users = set(u for u in (parsed['incoming'], parsed['outgoing']) if u)
            self._update(iqn, secrets, reset=set(users) | old_users, stale=set(users) - old_users)

    def plan_ensure(self, spec):
        self.check_portals(spec)
        desired = self.render(spec)
        old = self.read_config(spec.iqn)
        secrets = spec.secrets() + parse_config(old)['passwords']
        shown = self.show(secrets=secrets)
        before = self.read(spec.iqn, shown=shown, config=old)
        if before is not None and spec.chap is not None:
            # the passwords tgtd holds are not shown: they match when the file that set them is the one wanted
            before['chap_password_matches'] = old == desired
        plan = Plan('tgt')
        path = self.config_path(spec.iqn)
        users = set(c.username for c in (spec.chap, spec.mutual_chap) if c is not None)
        for other in shown.values():
            clash = users & set(user for user, _out in other['accounts'])
            if other['iqn'] != spec.iqn and clash:
                raise Conflict('CHAP user %s of %s is already bound to target %s: tgt keeps one password per user '
                               'name for all its targets, so give each target its own CHAP user.'
                               % (', '.join(sorted(clash)), spec.iqn, other['iqn']), iqn=spec.iqn)
        problems = self.problems(spec, shown.get(spec.iqn))
        if old == desired and not problems:
            return plan, before
        if not os.path.isdir(self.config_dir):
            raise InvalidInput('config_dir %s is not a directory: install tgt (it creates /etc/tgt/conf.d) or '
                               'create it.' % self.config_dir)
        if old != desired:
            plan.add('%s the tgt configuration %s' % ('Write' if old is None else 'Rewrite', path),
                     self._write, path, desired)
        plan.on_failure(self._restore, spec.iqn, old, secrets, users, spec.iqn in shown)
        old_parsed = parse_config(old)
        stale = set(u for u in (old_parsed['incoming'], old_parsed['outgoing']) if u) - users
        reset = users   # the passwords tgtd holds cannot be read: set them again
        plan.add('%s target %s in tgtd (tgt-admin --update)' % ('Create' if before is None else 'Update', spec.iqn),
                 self._update, spec.iqn, secrets, reset, stale)
        plan.add('', self.verify, spec)
        return plan, before

    @staticmethod
    def _write(path, text):
        # atomic_write keeps the mode of the file it replaces: a file that
        # someone made readable is closed first, before it gets a password
        st = fileio.lstat_regular(path)
        if st is not None and st.st_uid != os.geteuid():
            raise Conflict('The tgt configuration %s is owned by uid %d, not by this user: it was not written by '
                           'this collection, and the CHAP password must not go into a file another user owns. '
                           'Inspect it and remove it, then re-run.' % (path, st.st_uid), path=path)
        if st is not None and st.st_mode & 0o077:
            os.chmod(path, stat.S_IMODE(st.st_mode) & 0o700)
        fileio.atomic_write(path, text, mode=0o600)

    def _delete(self, iqn, secrets):
        base = ['tgt-admin'] + self.control + ['-c', self.config_path(iqn), '--delete', iqn]
        try:
            self._run(base + ['-f'], 'Deleting target %s from tgtd' % iqn, secrets=secrets, timeout=120)
        except CommandFailed:
            pass
        if iqn in self.show(secrets=secrets):
            self._run(base, 'Deleting target %s from tgtd' % iqn, secrets=secrets, timeout=120)
            if iqn in self.show(secrets=secrets):
                raise Conflict('Target %s is still in tgtd after tgt-admin --delete (with and without -f): '
                               'see tgtd\'s log, log its initiators out and re-run.' % iqn, iqn=iqn)

    def plan_remove(self, iqn):
        old = self.read_config(iqn)
        secrets = parse_config(old)['passwords']
        shown = self.show(secrets=secrets)
        before = self.read(iqn, shown=shown, config=old)
        plan = Plan('tgt')
        users = set(u for u in (parse_config(old)['incoming'], parse_config(old)['outgoing']) if u)
        if iqn in shown:
            users |= set(user for user, _out in shown[iqn]['accounts'])
            plan.add('Delete target %s from tgtd (tgt-admin --delete)' % iqn, self._delete, iqn, secrets)
            plan.add('', self._drop_accounts, users, secrets)
        if old is not None:
            plan.add('Remove the tgt configuration %s' % self.config_path(iqn), fileio.unlink,
                     self.config_path(iqn))
        return plan, before


PROVIDER = TgtProvider
