# alertcap: `make demo` and `make test` set up what they need on a fresh Debian machine.
SHELL := /bin/bash
PY    ?= python3
VENV  := .venv
BIN   := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test up down status lint bench setup tcpdump tshark chromium native clean package

demo: setup
	$(BIN)/python -m localdev demo

# Two xdist workers: the end-to-end tests (one shared local stack, mostly waiting on
# timers) on one, every other module on the other (tests/conftest.py makes the units).
test: setup lint
	$(BIN)/python -m pytest -n 2 --dist loadscope --no-loadscope-reorder

up: setup
	$(BIN)/python -m localdev up

down:
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m localdev down; else echo "nothing to stop"; fi

status: setup
	$(BIN)/python -m localdev status

lint: setup
	@echo "==> ruff, mypy, and the orchestrator determinism check"
	$(BIN)/ruff check .
	$(BIN)/mypy
	@$(BIN)/azure-functions-doctor doctor --path . --profile minimal > .doctor.out 2>&1 \
	  || { cat .doctor.out; rm -f .doctor.out; exit 1; }
	@grep -E "determinism|Doctor summary|fails," .doctor.out | sed 's/^/    /'; rm -f .doctor.out
	@# checkov (pinned in infra/requirements-checkov.txt) lives in its own venv (.venv-checkov, ignored by git and ruff): it would downgrade packaging and python-dateutil in .venv. ARM JSON only: its Bicep parser cannot read main.bicep (lambdas), and tests/infra keeps the two equivalent.
	@test -x .venv-checkov/bin/checkov || { $(PY) -m venv .venv-checkov && .venv-checkov/bin/pip install --quiet --disable-pip-version-check -r infra/requirements-checkov.txt; }
	.venv-checkov/bin/checkov -d infra --framework arm --skip-download --compact --quiet

# The function app package Azure runs (allow-list; no dev files), with its size.
package: setup
	$(BIN)/python infra/package.py dist/alertcap.zip

bench: setup tshark
	$(BIN)/python bench/pcap_bench.py
	$(BIN)/python bench/host_bench.py
	$(BIN)/python bench/storm_bench.py
	$(BIN)/python bench/preflight_bench.py
	$(BIN)/python bench/fanout_bench.py

setup: $(STAMP) node_modules/.package-lock.json tcpdump chromium native

test: tshark

$(STAMP): requirements.txt requirements-dev.txt
	@echo "==> Python venv in $(VENV) (requirements.txt + requirements-dev.txt)"
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

node_modules/.package-lock.json: package.json package-lock.json
	@echo "==> npm ci (Azurite for local Blob storage, adaptivecards for the Teams receiver)"
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

tcpdump:
	@if ! command -v tcpdump >/dev/null 2>&1 && [ ! -x /usr/bin/tcpdump ] && [ ! -x /usr/sbin/tcpdump ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "==> apt-get install tcpdump (real packet captures for the local Network Watcher)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tcpdump >/dev/null; \
	  else echo "tcpdump is missing and this is not root: install it with 'sudo apt-get install tcpdump'"; exit 1; fi; \
	fi

tshark:
	@if ! command -v tshark >/dev/null 2>&1 || ! command -v capinfos >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "==> apt-get install tshark (the pcap tests check our summary against tshark's)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tshark >/dev/null; \
	  else echo "tshark is missing and this is not root: install it with 'sudo apt-get install tshark'"; exit 1; fi; \
	fi

chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "==> apt-get install chromium (the local Teams receiver renders Adaptive Cards in it)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is missing and this is not root: install it with 'sudo apt-get install chromium'"; exit 1; fi; \
	fi

# The pcap summary's C accelerator (alertcap/pcap/_fastscan.c), built beside its source
# for this venv's Python (the file name carries the interpreter's version and platform,
# so another interpreter never loads it; without it the pure-Python scan gives the same
# counts, slower). It uses the CPython API and no libc function newer than glibc 2.2.5.
native: $(STAMP)
	@if ! command -v gcc >/dev/null 2>&1 || [ ! -f "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "==> apt-get install gcc python3-dev (the pcap summary's C accelerator)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc python3-dev >/dev/null; \
	  else echo "gcc or Python.h is missing and this is not root: 'sudo apt-get install gcc python3-dev'"; exit 1; fi; \
	fi
	@inc=$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["include"])'); \
	ext=$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))'); \
	out=alertcap/pcap/_fastscan$$ext; \
	if [ ! -f $$out ] || [ alertcap/pcap/_fastscan.c -nt $$out ]; then \
	  echo "==> gcc alertcap/pcap/_fastscan.c (the pcap summary's C accelerator)"; \
	  gcc -O2 -shared -fPIC -Wall -Wextra -Werror -I$$inc -o $$out alertcap/pcap/_fastscan.c; \
	fi

clean:
	rm -rf $(VENV) node_modules .localdev .pytest_cache .mypy_cache .ruff_cache alertcap/pcap/_fastscan.*.so
