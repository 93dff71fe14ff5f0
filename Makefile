# The two commands of the README. Both work on a fresh Debian machine as root:
#   make lab    the guided tour: ustack against the Linux kernel in a private namespace
#   make test   the whole test suite
# Each creates .venv when missing, installs ustack editable with its extras when pyproject.toml
# changed (stamp keyed on its hash), and installs the Debian tools the tests use (and
# python3-venv, which `python3 -m venv` needs on Debian) when missing.

PYTHON ?= python3
VENV   := .venv
VPY    := $(VENV)/bin/python
# Debian packages: command they provide -> package name
DEB_TOOLS := ip:iproute2 ping:iputils-ping tshark:tshark tcpdump:tcpdump openssl:openssl dnsmasq:dnsmasq-base curl:curl

.PHONY: lab test setup venv sysdeps lint clean

lab: setup
	$(VENV)/bin/ustack lab $(ARGS)

test: setup
	$(VPY) -m pytest -q $(ARGS)

setup: sysdeps venv

venv: sysdeps
	@set -e; \
	if [ ! -x "$(VPY)" ]; then \
		echo "make: creating $(VENV)"; \
		$(PYTHON) -m venv $(VENV); \
	fi; \
	key=$$(cat pyproject.toml | sha256sum | cut -c1-16); \
	stamp="$(VENV)/.ustack-installed-$$key"; \
	if [ ! -f "$$stamp" ]; then \
		echo "make: pip install -e '.[test,plot]'"; \
		$(VPY) -m pip install -q --upgrade pip >/dev/null 2>&1 || true; \
		$(VPY) -m pip install -q -e '.[test,plot]'; \
		rm -f $(VENV)/.ustack-installed-*; \
		touch "$$stamp"; \
	fi

sysdeps:
	@set -e; \
	missing=""; \
	for pair in $(DEB_TOOLS); do \
		cmd=$${pair%%:*}; pkg=$${pair#*:}; \
		command -v $$cmd >/dev/null 2>&1 || [ -x /usr/sbin/$$cmd ] || [ -x /sbin/$$cmd ] || missing="$$missing $$pkg"; \
	done; \
	[ -x "$(VPY)" ] || $(PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then \
			echo "make: missing Debian packages:$$missing (run as root to install them)" >&2; exit 1; \
		fi; \
		echo "make: apt-get install$$missing"; \
		echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
