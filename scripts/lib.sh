# shellcheck shell=bash
# Common setup for the scripts in this directory: source it, do not run it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=$ROOT/.venv
BUILD=${BUILD_DIR:-$ROOT/.build}
# ansible-test wants the tree at .../ansible_collections/<namespace>/<name>
COLL_DIR=$BUILD/ansible_collections/blockyard/storage
export LC_ALL=C.UTF-8 LANG=C.UTF-8
export PATH=$VENV/bin:$PATH
export PIP_DISABLE_PIP_VERSION_CHECK=1
export ANSIBLE_NOCOLOR=1 PY_COLORS=0

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
# this machine's pip.conf names local indexes that may be absent: drop the noise
filter_pip_noise() { grep -v 'is ignored: it is neither a file nor a directory' || true; }

require_venv() {
    [[ -x $VENV/bin/ansible-test ]] || die "no $VENV/bin/ansible-test: run 'make install' first"
}

# Copy the working tree (committed or not) to $COLL_DIR, leaving out local
# tool state and generated files.  The copy is fresh each time so that
# deleted files do not linger; tests/output inside it is kept as a cache.
copy_collection() {
    local keep=
    if [[ -d $COLL_DIR/tests/output ]]; then
        keep=$(mktemp -d "$BUILD/output.XXXXXX")
        mv "$COLL_DIR/tests/output" "$keep/"
    fi
    rm -rf "$COLL_DIR"
    mkdir -p "$COLL_DIR"
    tar -C "$ROOT" -cf - \
        --exclude=./.git --exclude=./.venv --exclude=./.venv-cinder --exclude=./.build \
        --exclude=./collections --exclude=./demo-volumes \
        --exclude=./tests/output --exclude=./tests/integration/inventory \
        --exclude=./benchmarks/results.json \
        --exclude='*.tar.gz' --exclude=__pycache__ --exclude=.pytest_cache \
        --exclude='*.pyc' --exclude=.mypy_cache . |
        tar -C "$COLL_DIR" -xf -
    if [[ -n $keep ]]; then
        mv "$keep/output" "$COLL_DIR/tests/output" && rmdir "$keep"
    fi
    # ansible-test takes the nearest parent holding .git as the source of
    # the file list; without a repository of its own the copy would be seen
    # as an ignored part of this one ("WARNING: All targets skipped.").  A
    # fresh repository lists every file (untracked, minus .gitignore).
    git -C "$COLL_DIR" -c init.defaultBranch=main init -q
}

# ansible-test bootstraps pip in the virtual environments it creates by
# downloading get-pip for pip 24.2 from a host this machine cannot reach
# (ansible/ansible#77304).  It uses a cached copy when one exists, so put
# our own there: a script that installs the pip 24.2 wheel from PyPI,
# downloaded once into .venv/cache.
PIP_BOOTSTRAP_VERSION=24.2
prepare_pip_bootstrap() {
    local wheels=$VENV/cache/pip-wheels
    local cache=$HOME/.ansible/test/cache
    local script=$cache/get_pip_${PIP_BOOTSTRAP_VERSION//./_}.py
    local wheel=$wheels/pip-$PIP_BOOTSTRAP_VERSION-py3-none-any.whl
    if [[ ! -f $wheel ]]; then
        log "downloading pip $PIP_BOOTSTRAP_VERSION wheel for ansible-test"
        "$VENV/bin/python" -m pip download -q --no-deps -d "$wheels" \
            "pip==$PIP_BOOTSTRAP_VERSION" 2>&1 | filter_pip_noise
        [[ -f $wheel ]] || die "pip download did not produce $wheel"
    fi
    mkdir -p "$cache"
    cat >"$script.tmp" <<PY
# Written by blockyard.storage scripts/lib.sh: offline stand-in for get-pip.
import os, subprocess, sys
WHEEL = "$wheel"
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
cmd = [sys.executable, os.path.join(WHEEL, "pip"), "install", "--no-index",
       "--find-links", os.path.dirname(WHEEL)] + args
if not any(a.startswith("pip") for a in args):
    cmd.append("pip==$PIP_BOOTSTRAP_VERSION")
sys.exit(subprocess.call(cmd))
PY
    mv "$script.tmp" "$script"
}
