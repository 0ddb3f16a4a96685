# Two commands for a newcomer: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test rasa bench load load-instances profile screenshots check-responses constraints clean

# Quiet installs (-qq: errors only) pinned by constraints.txt: the same versions everywhere.
PIP := $(BIN)/python -m pip --disable-pip-version-check -qq

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# Stamp files: reinstall only when pyproject.toml or the constraints change.
$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) install -c constraints.txt -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) install -c constraints.txt -e '.[test,rasa,postgres]'
	touch $@ $(VENV)/.installed

# A real Rasa server for the tests, in its own environment: Rasa 3.6 runs on Python 3.10 only
# (pyenv's, or one on the PATH), beside our 3.11. About a minute, once.
RASA_VENV := .venv-rasa
RASA_PYTHON ?= $(shell for p in $(wildcard $(HOME)/.pyenv/versions/3.10.*/bin/python3.10) python3.10; do \
	$$p -c 'import venv' 2>/dev/null && echo $$p && break; done)

$(RASA_VENV)/.installed: constraints-rasa.txt
	@test -n "$(RASA_PYTHON)" || { echo "Rasa 3.6 needs Python 3.10: install it (pyenv install 3.10) or set RASA_PYTHON"; exit 1; }
	rm -rf $(RASA_VENV)
	$(RASA_PYTHON) -m venv $(RASA_VENV)
	$(RASA_VENV)/bin/python -m pip --disable-pip-version-check -qq install -c constraints-rasa.txt rasa==3.6.21
	touch $@

rasa: $(RASA_VENV)/.installed

# The demo: reports sent "to the support team" land in a demo inbox shown in the console, and
# whoever tries it answers as staff with /staff (REACHABLE_DEMO_INBOX; never for real use).
demo: $(VENV)/.installed
	REACHABLE_DEMO_INBOX=1 $(BIN)/reachable console

test: $(VENV)/.installed-test $(RASA_VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo --no-cache
	@# Forty minutes at most, whatever hangs: the whole run takes about fifteen on a busy machine.
	timeout -k 30 2400 $(BIN)/python -m pytest -n 2 --dist loadgroup

# Figures, not tests: every channel against what it would otherwise be built with, start and
# memory; writes README's figures table (about a quarter of an hour).
# Reachable's own modules compiled first, as `pip install` does for a package: this machine may set
# PYTHONDONTWRITEBYTECODE, and then every start would compile them again.
bench: $(VENV)/.installed-test
	$(BIN)/python -m compileall -q bot flows responses storage
	$(BIN)/python -m bench.run

# Sampling profiles at capacity, as flame graphs in docs/: the report flow on aiogram and its
# peer (each also summed into milliseconds a message by part, bench/where.py), the web chat's
# server and the Rasa action server.
profile: $(VENV)/.installed-test
	$(BIN)/py-spy record -r 200 -o docs/flamegraph-report-flow.svg -- $(BIN)/python -m bench.profile
	$(BIN)/py-spy record -r 200 --format raw -o .profile-report-flow.txt -- $(BIN)/python -m bench.profile
	$(BIN)/python -m bench.where .profile-report-flow.txt 200
	$(BIN)/py-spy record -r 200 -o docs/flamegraph-peer-aiogram.svg -- $(BIN)/python -m bench.profile peer
	$(BIN)/py-spy record -r 200 --format raw -o .profile-peer.txt -- $(BIN)/python -m bench.profile peer
	$(BIN)/python -m bench.where .profile-peer.txt 200
	$(BIN)/python -m bench.profile web docs/flamegraph-web-chat.svg
	$(BIN)/python -m bench.profile rasa docs/flamegraph-rasa-actions.svg

# 1,000 people at Telegram's real flood limits: takes minutes by design.
load: $(VENV)/.installed-test
	$(BIN)/python -m bench.load

# Two instances on PostgreSQL behind `reachable spread`, 1,000 people, then again with one killed
# (SIGKILL) halfway: needs Debian's postgresql (about half an hour at Telegram's limits).
load-instances: $(VENV)/.installed-test
	$(BIN)/python -m bench.instances
	$(BIN)/python -m bench.instances --kill

# The web chat's main screens at 320 px and 1280 px, into docs/web/ (needs Debian's chromium).
screenshots: $(VENV)/.installed-test
	$(BIN)/python -m fakes.screenshots

check-responses: $(VENV)/.installed
	$(BIN)/reachable responses check $(DIR)

# After changing dependencies in pyproject.toml: install them, then pin what was installed.
constraints: | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test,rasa,postgres]'
	(head -2 constraints.txt; $(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e') > constraints.new
	@# A package installed from a local file would pin a path no other machine has.
	@! grep -n ' @ ' constraints.new || { echo "constraints.new: pin these by version, not by path"; exit 1; }
	mv constraints.new constraints.txt

clean:
	rm -rf $(VENV) $(RASA_VENV) .pytest_cache .mypy_cache .ruff_cache
