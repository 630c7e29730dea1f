# blockyard.storage: developer and CI entry points (docs/DEVELOPING.md).
# Logic lives in scripts/; every target but clean runs `install` first.
SHELL := /bin/bash
export LC_ALL := C.UTF-8
export LANG := C.UTF-8
# interpreter for .venv (Python >= 3.11 with venv; pyenv's 3.11 here)
PYTHON ?= python3
DEMO_DIR ?= $(CURDIR)/demo-volumes
export PYTHON DEMO_DIR

.PHONY: help install demo test bench units sanity lint integration test-vm galaxy-check clean distclean

help:
	@echo "make install      apt packages (bindep.txt), .venv, collection link"
	@echo "make test         units, interop, sanity, lint, integration, test-vm, galaxy-check"
	@echo "make units|sanity|lint|integration|test-vm|galaxy-check   one stage"
	@echo "make test-vm      the VM tier alone (a Debian guest under qemu: LVM, LIO, NFS, iSCSI attach)"
	@echo "make demo         playbooks/demo.yml on localhost (DEMO_DIR=$(DEMO_DIR))"
	@echo "make bench        benchmarks/run.py"
	@echo "make clean        remove generated files (distclean: also .venv)"

install:
	@scripts/install

test: install
	@scripts/run-tests

units sanity lint integration test-vm galaxy-check: install
	@scripts/$@

demo: install
	@scripts/demo

bench: install
	.venv/bin/python benchmarks/run.py

clean:
	rm -rf --one-file-system .build tests/output tests/integration/inventory collections demo-volumes \
	  .pytest_cache .benchmarks benchmarks/results.json blockyard-storage-*.tar.gz
	find . -path ./.venv -prune -o -path ./.git -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf .venv
