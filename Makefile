# Two commands do all the set-up on a fresh machine:  make demo  and  make test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch 2.13.0 is the CPU build on this project's machines; pip takes it before resolving the rest.
TORCH ?= torch==2.13.0

# The app's browser test drives Debian's chromium (Playwright never downloads a browser here). Installed when
# missing and apt-get can (root, as on CI); otherwise that one test skips and says why.
CHROMIUM ?= /usr/bin/chromium

.PHONY: demo test install browser bench clean

$(BIN)/semflow: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[test,app]"
	touch $@

install: $(BIN)/semflow

demo: install
	$(BIN)/semflow demo --out semflow-demo
	@echo "Open the demo's model in the browser app:  $(BIN)/semflow app --model semflow-demo/model"

browser:
	@test -x $(CHROMIUM) || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] \
	  && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "chromium not installed: the app's browser test will skip"; }

test: install browser
	$(BIN)/python -m pytest -q tests

clean:
	rm -rf $(VENV) semflow-demo .pytest_cache
