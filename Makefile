# Two commands on a fresh machine: `make demo` and `make test` (see README).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
FMNIST := /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz

.PHONY: install data postgres chromium demo test lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

# Fashion-MNIST comes from Debian; install it only when the IDX files are missing.
data:
	@if [ -z "$$SEARCHER_DATA" ] && [ ! -f $(FMNIST) ]; then \
	  (apt-get update -q && apt-get install -y -q dataset-fashion-mnist) >/dev/null; fi

# PostgreSQL for tests/reliability (a throw-away server on loopback) comes from Debian too, only when missing.
postgres:
	@if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  (apt-get update -q && apt-get install -y -q postgresql) >/dev/null; fi

# Headless Chromium opens the HTML report in tests/test_report.py; also from Debian, only when missing.
chromium:
	@if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then \
	  (apt-get update -q && apt-get install -y -q chromium fonts-dejavu-core) >/dev/null; fi

demo: install data
	$(BIN)/searcher optimize --study fashion-vit --budget 50%

lint: install
	$(BIN)/ruff check searcher tests bench
	$(BIN)/mypy searcher

# Tests in parallel (pytest-xdist): one worker per core, at most 4 (each holds torch and the models in memory);
# worksteal, because a few tests take a minute each. `pytest` alone runs them in one process.
test: install data postgres chromium lint
	$(BIN)/pytest -n auto --maxprocesses 4 --dist worksteal

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache runs .cache
