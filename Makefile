# DreamCompute: `make run` (embedded demo), `make test` (whole suite against
# real servers), `make allinone` / `make stop` (the real cloud on one host).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000

# What the embedded mode needs: a Python toolchain to build the few C
# extensions (libvirt-python), node/npm for the front-end assets.
RUN_PACKAGES := python3-venv python3-dev gcc pkg-config libvirt-dev libvirt0 qemu-utils genisoimage
# What the suite runs against, on top of that.
# The real hypervisor: libvirtd with QEMU, run under tini (see HOST-NOTES).
HYPERVISOR_PACKAGES := libvirt-daemon-system qemu-system-x86 tini
# A one-node Ceph for block storage (started by core.localservers.Ceph), its
# Python bindings, and QEMU's rbd driver.
CEPH_PACKAGES := ceph-mon ceph-osd ceph-mgr ceph-common python3-rados python3-rbd qemu-block-extra
TEST_PACKAGES := $(RUN_PACKAGES) $(HYPERVISOR_PACKAGES) $(CEPH_PACKAGES) postgresql redis-server chromium fonts-liberation openssh-client
ALLINONE_PACKAGES := $(RUN_PACKAGES) $(HYPERVISOR_PACKAGES) $(CEPH_PACKAGES) postgresql redis-server

.PHONY: run test allinone stop system-run system-test system-allinone venv venv-test ceph-modules assets guest-image lint clean

run: system-run venv assets guest-image
	@DEBUG=$${DEBUG:-1} $(PY) manage.py migrate --no-input -v0
	@DEBUG=$${DEBUG:-1} $(PY) manage.py seed_demo
	@echo ""
	@echo "  DreamCompute is serving on http://127.0.0.1:$(PORT)/"
	@echo "  Log in as demo / $${DEMO_PASSWORD:-demo} (member of project demo)"
	@echo "  or admin / $${ADMIN_PASSWORD:-admin} (operator; Django admin at /admin/)."
	@echo "  openstack CLI: OS_AUTH_URL=http://127.0.0.1:$(PORT)/identity OS_USERNAME=demo OS_PASSWORD=$${DEMO_PASSWORD:-demo} OS_PROJECT_NAME=demo OS_USER_DOMAIN_NAME=Default OS_PROJECT_DOMAIN_NAME=Default"
	@echo ""
	DEBUG=$${DEBUG:-1} exec $(VENV)/bin/uvicorn config.asgi:application --host 127.0.0.1 --port $(PORT) --lifespan on

test: system-test venv-test ceph-modules assets guest-image
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

allinone: system-allinone venv ceph-modules assets guest-image
	$(PY) scripts/allinone start

stop:
	@if [ -x $(PY) ]; then $(PY) scripts/allinone stop; else echo "nothing to stop"; fi

# Debian's nodejs and npm only where no npm is installed yet (an existing
# Node.js distribution ships its own npm and conflicts with Debian's).
NPM_ENSURE := command -v npm >/dev/null || scripts/apt-ensure nodejs npm
system-run:
	@scripts/apt-ensure $(RUN_PACKAGES) && $(NPM_ENSURE)
system-test:
	@scripts/apt-ensure $(TEST_PACKAGES) && $(NPM_ENSURE)
system-allinone:
	@scripts/apt-ensure $(ALLINONE_PACKAGES) && $(NPM_ENSURE)

# The virtualenv is rebuilt only when a requirements file changes.
venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	@touch $@

venv-test: $(VENV)/.installed-test
$(VENV)/.installed-test: requirements.txt requirements-test.txt
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-test.txt
	@touch $@ $(VENV)/.installed

# Debian's rados and rbd modules (PyPI has none) are CPython extensions: the
# virtualenv gets links to just their .so files, so nothing else of Debian's
# Python leaks in. For the suite and the all-in-one only (`make run` needs no Ceph).
CEPH_MODULES_DIR := /usr/lib/python3/dist-packages
ceph-modules: venv
	@site=$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') && \
	suffix=$$($(PY) -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))') && \
	for mod in rados rbd; do \
	  so=$(CEPH_MODULES_DIR)/$$mod$$suffix; \
	  if [ ! -f $$so ]; then \
	    echo "$$so is missing: install python3-$$mod, with a virtualenv of Debian's Python version" >&2; exit 1; \
	  fi; \
	  [ "$$(readlink $$site/$$mod$$suffix)" = "$$so" ] || ln -sfn $$so $$site/$$mod$$suffix; \
	done && $(PY) -c 'import rados, rbd'

assets: static/vendor/.installed
static/vendor/.installed: package.json package-lock.json scripts/vendor-assets
	scripts/vendor-assets
	@touch $@

# The tiny guest (Debian's cloud kernel + a busybox initramfs), built from
# Debian packages; the script itself skips the work when it is up to date.
guest-image:
	@scripts/build-guest-image var/images

lint: venv-test
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) node_modules static/vendor
