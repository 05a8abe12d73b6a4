# switchover — developer and CI entry points. CI (.ci/run) runs `make lint`, then `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.setup-stamp

.PHONY: setup test test-pymap demo bench bench-tui screenshots lint clean

# Idempotent: the venv is (re)installed only when pyproject.toml changed. The demo extra
# (pymap, aiosmtpd: the demo's servers) comes with it, so `make demo` works on a fresh machine.
setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test,demo]'
	touch $(STAMP)

# Every test against Dovecot (pymap when Dovecot is absent), then the server smoke tests
# once more against pymap so the fallback keeps working.
# Tests run in parallel, one worker per core (at most 4): each worker starts its own Dovecot
# and SMTP server on free loopback ports, so workers never share a mailbox or a state file.
test: setup
	$(VENV)/bin/pytest -q -n auto --maxprocesses 4
	SWITCHOVER_TEST_SERVER=pymap $(VENV)/bin/pytest -q tests/core/test_servers.py

test-pymap: setup
	SWITCHOVER_TEST_SERVER=pymap $(VENV)/bin/pytest -q -n auto --maxprocesses 4

demo: setup
	$(VENV)/bin/switchover demo

bench: setup
	$(PY) -m bench
	$(PY) -m bench.tui_memory
	$(PY) -m bench.campaign
	$(PY) -m bench.scan

# the dashboard's memory after 10,000 and 50,000 arrivals (fails above 120 MB)
bench-tui: setup
	$(PY) -m bench.tui_memory

screenshots: setup
	$(PY) -m pip install -q --disable-pip-version-check -e '.[screenshots]'
	$(PY) -m switchover.demo.screenshots

# The layering contracts of pyproject.toml (import-linter, on the installed names: core
# imports no UI / CLI / demo and never the engine; the dashboard no protocol library, no
# sqlite, no CLI, no demo), `mypy --strict` on the engine, and everything compiles.
lint: setup
	$(PY) -m tests.support.layering
	$(VENV)/bin/mypy --strict core
	$(PY) -m compileall -q core switchover tui tests bench
	@echo "lint: ok"

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
