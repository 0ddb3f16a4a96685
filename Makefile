# Two commands for a newcomer: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench load check-responses clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamp files: reinstall only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/reachable console

test: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -n 2

# Figures, not tests: capacity against bare aiogram, latency, memory (a minute or two).
bench: $(VENV)/.installed-test
	$(BIN)/python -m bench.run

# 1,000 people at Telegram's real flood limits: takes minutes by design.
load: $(VENV)/.installed-test
	$(BIN)/python -m bench.load

check-responses: $(VENV)/.installed
	$(BIN)/reachable responses check $(DIR)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
