# Two commands for a new user: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test demo readme bench clean

setup: $(STAMP)

# Reinstall only when requirements.txt changes: `make setup` is a no-op otherwise.
$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

# -rs: the reason of each skipped test (e.g. SLURM's daemons cannot be started here);
# -n: a worker per core and one more, each test file on one worker (its module fixtures built once):
# the tests wait on real processes, signals and SLURM's daemons part of the time, and the extra
# worker fills those waits (2 cores: 454 s with 2 workers, 400 s with 3, on 2026-12-01)
WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))
test: setup
	$(PY) -m pytest -q -rs -n $(WORKERS) --dist loadfile tests

# the demo: everything under runs/demo/, tracked files untouched; two runs at a time (see scripts/demo.sh)
DEMO_JOBS ?= 2
demo: setup
	PYTHON=$(PY) bash scripts/demo.sh --jobs $(DEMO_JOBS)

# maintainers: the README's demo figures, captions and pictures (docs/demo.json, docs/*.png) from runs/demo
readme: setup
	$(PY) scripts/readme.py --from runs/demo

bench: setup
	$(PY) scripts/bench.py --quick --out runs/bench.json

clean:
	rm -rf runs .pytest_cache
