# The README's commands. Each target makes sure .venv exists and is up to date first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export TF_CPP_MIN_LOG_LEVEL := 2
export TF_ENABLE_ONEDNN_OPTS := 0
export OMP_NUM_THREADS := 2
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: install chromium demo test bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/segflow demo

# The browser test (tests/server/test_browser.py) drives Debian's Chromium through Playwright,
# which cannot download browsers of its own here; only `test` needs it.
chromium:
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

# Lint, format check and type check first (seconds), then the suite and the packages' doctests.
test: $(STAMP) chromium
	$(BIN)/ruff check
	$(BIN)/ruff format --check
	$(BIN)/mypy
	$(BIN)/python -m pytest -n 2 --dist loadfile

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) segflow-data segflow-demo benchmarks/results
