# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Figure idempotent_volume_vs_stat: one ansible-playbook run of N idempotent
blockyard.storage.volume tasks vs one run of N ansible.builtin.stat tasks on
the same files (same play shape, same ansible.cfg, same interpreter)."""

import os
import re
import resource

from lib import PYTHON, VENV_BIN, core, figure, log, median, run, timed

PLAY = '''- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: {python}
  tasks:
    - name: {what}
      {task}
      loop: "{{{{ range({count}) | list }}}}"
      register: r
      failed_when: r is failed or r is changed
'''

VOLUME_TASK = ('blockyard.storage.volume: {{name: "bench{{{{ item }}}}", size: 1M, volume_dir: "{dir}", '
               'mode: "0660"}}')
STAT_TASK = 'ansible.builtin.stat: {{path: "{dir}/volume-bench{{{{ item }}}}"}}'

CFG = '''[defaults]
forks = 5
gathering = explicit
host_key_checking = False
retry_files_enabled = False
interpreter_python = {python}
local_tmp = {tmp}/local
remote_tmp = {tmp}/remote
nocolor = True
deprecation_warnings = False

[connection]
pipelining = True
'''


def _env(cfg):
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith('ANSIBLE_'))
    env.update(ANSIBLE_CONFIG=cfg, ANSIBLE_NOCOLOR='1', LC_ALL='C.UTF-8', LANG='C.UTF-8')
    return env


def _play(path, kind, directory, count):
    task = (VOLUME_TASK if kind == 'volume' else STAT_TASK).format(dir=directory)
    with open(path, 'w') as handle:
        handle.write(PLAY.format(python=PYTHON, what=kind, task=task, count=count))


def _children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _playbook(playbook, env):
    proc = run([os.path.join(VENV_BIN, 'ansible-playbook'), '-i', 'localhost,', playbook], env=env,
               universal_newlines=True)
    recap = re.search(r'localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)', proc.stdout)
    if not recap or recap.group(2) != '0' or recap.group(4) != '0':
        raise RuntimeError('%s: expected ok and changed=0, got: %s' % (playbook, proc.stdout[-1500:]))
    return proc


def idempotent_volume_vs_stat(ctx):
    volumes, _fileio = core()
    count = 10 if ctx.quick else 100
    reps = 1 if ctx.quick else 3
    work = ctx.scratch('ansible')
    vol_dir = os.path.join(work, 'volumes')
    os.makedirs(os.path.join(work, 'tmp'))
    os.makedirs(vol_dir)
    log('creating %d volumes (core, not timed)' % count)
    for i in range(count):
        volumes.ensure_volume({'name': 'bench%d' % i, 'size': '1M', 'volume_dir': vol_dir, 'mode': '0660'}, False)
    cfg = os.path.join(work, 'ansible.cfg')
    with open(cfg, 'w') as handle:
        handle.write(CFG.format(python=PYTHON, tmp=os.path.join(work, 'tmp')))
    env = _env(cfg)
    plays = {}
    for kind in ('volume', 'stat'):
        plays[kind] = os.path.join(work, '%s.yml' % kind)
        _play(plays[kind], kind, vol_dir, count)
    samples = {'volume': [], 'stat': []}
    cpu = {'volume': [], 'stat': []}
    for rep in range(reps):
        order = ('volume', 'stat') if rep % 2 == 0 else ('stat', 'volume')
        for kind in order:
            cpu0 = _children_cpu()
            seconds, _proc = timed(_playbook, plays[kind], env)
            samples[kind].append(seconds)
            cpu[kind].append(round(_children_cpu() - cpu0, 3))
            log('rep %d: %d %s tasks in one playbook run: %.2f s (cpu %.2f s)'
                % (rep + 1, count, kind, seconds, cpu[kind][-1]))
    cpu_ratio = median(cpu['volume']) / median(cpu['stat'])
    return [figure(
        'idempotent_volume_vs_stat',
        '%d idempotent blockyard.storage.volume tasks vs %d ansible.builtin.stat tasks (one playbook run each)'
        % (count, count),
        'ansible-playbook, loop of %d ansible.builtin.stat (default options)' % count,
        'ansible-playbook, loop of %d blockyard.storage.volume, all changed=false' % count,
        samples['stat'], samples['volume'], 'ours/baseline', '<=', 1.15,
        tasks=count, repetitions=reps,
        cpu_s={'baseline': cpu['stat'], 'ours': cpu['volume'], 'ratio_ours_baseline': round(cpu_ratio, 4),
               'what': 'user+sys CPU of the ansible-playbook process tree (controller + modules); '
                       'informational, less sensitive to other load on the machine than wall time'},
        settings={'connection': 'local', 'gather_facts': False, 'forks': 5, 'pipelining': True,
                  'ansible_python_interpreter': PYTHON, 'order': 'interleaved, alternating'})]
