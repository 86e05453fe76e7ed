# Two commands do all the set-up on a fresh machine:  make demo  and  make test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch 2.13.0 is the CPU build on this project's machines; pip takes it before resolving the rest.
TORCH ?= torch==2.13.0

.PHONY: demo test install bench clean

$(BIN)/semflow: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

install: $(BIN)/semflow

demo: install
	$(BIN)/semflow demo --out semflow-demo

test: install
	$(BIN)/python -m pytest -q tests

clean:
	rm -rf $(VENV) semflow-demo .pytest_cache
