# Two commands from a fresh clone:  `make cluster`  and  `make test`.
# Everything the project needs is installed here, pinned by requirements.lock, into .venv.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
STAMP  := $(VENV)/.installed
PEERS  ?= 3

.PHONY: all setup cluster test lint typecheck pytest book book-build browser bench soak lab grade clean

all: test

$(STAMP): pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip==26.3" "setuptools==80.9.0" "wheel==0.45.1"
	$(PY) -m pip install --quiet -c requirements.lock -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

setup: $(STAMP) ## install everything (pinned) into .venv

cluster: setup ## start a local cluster of $(PEERS) peers (Ctrl-C stops it)
	$(BIN)/refimpl cluster up --peers $(PEERS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy --strict $$(for d in refimpl exercises tests bench; do find $$d -name '*.py' 2>/dev/null | grep -q . && echo $$d; done) conftest.py

pytest: setup
	$(BIN)/python -m pytest -q -m "not browser" tests

book-build: setup
	rm -rf _build
	$(BIN)/jupyter-book build . -W -n --keep-going

browser: setup
	$(BIN)/python -m pytest -q -m browser tests

book: book-build ## build the book; the HTML is in _build/html
	@echo "The book is at file://$(CURDIR)/_build/html/index.html"

test: lint typecheck book-build ## every check: ruff, mypy --strict, the book, then pytest (browser test included)
	$(BIN)/python -m pytest -q tests

bench: setup
	$(PY) -m pip install --quiet -c requirements.lock -r requirements-bench.lock
	@for f in bench/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

SIM_SOAK_FILES = tests/peer/test_sim_group_g.py tests/peer/test_sim_reads.py \
	tests/peer/test_sim_transfers.py tests/peer/test_sim_shard_snapshots.py \
	tests/peer/test_sim_cluster.py tests/api/test_shard_snapshots.py

soak: setup ## the Raft simulator over 10 000 seeds, then every seeded peer simulation over 40
	$(BIN)/refimpl sim soak --seeds 10000
	REFIMPL_SIM_SEEDS=40 $(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow" $(SIM_SOAK_FILES)

grade: setup
	$(PY) -m exercises.grade

lab: setup ## the chapters as live notebooks in JupyterLab (jupytext opens each .md as a notebook)
	$(BIN)/jupyter lab --ServerApp.root_dir=book $$([ "$$(id -u)" = 0 ] && echo --allow-root)

clean:
	rm -rf _build .mypy_cache .ruff_cache .pytest_cache
