# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Print a JSON listing of a directory tree: for every entry its relative
path, type and mode, owner, size, allocated blocks, mtime (ns) and, for
regular files up to 1 MiB, the sha256 of the content. Two listings that
compare equal mean nothing in the tree was created, removed or modified.
A missing directory lists as {"missing": path}."""

import hashlib
import json
import os
import stat
import sys

SMALL = 1024 * 1024


def entry(root, path):
    st = os.lstat(path)
    item = {'path': os.path.relpath(path, root), 'mode': oct(st.st_mode), 'uid': st.st_uid, 'gid': st.st_gid,
            'size': st.st_size, 'blocks': st.st_blocks, 'mtime_ns': st.st_mtime_ns}
    if stat.S_ISREG(st.st_mode) and st.st_size <= SMALL:
        with open(path, 'rb') as handle:
            item['sha256'] = hashlib.sha256(handle.read()).hexdigest()
    return item


def main(root):
    if not os.path.lexists(root):
        return {'missing': root}
    items = [entry(root, root)] if not os.path.isdir(root) else []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            items.append(entry(root, os.path.join(dirpath, name)))
    return items


if __name__ == '__main__':
    print(json.dumps(main(sys.argv[1]), sort_keys=True, indent=0))
