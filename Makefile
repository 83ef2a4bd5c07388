# aliyun-ops: `make demo` and `make test` do all set-up from a fresh clone (Python 3.11).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv test lint demo stop cluster cluster-stop bench emulator clean

$(STAMP): requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check .

emulator: $(STAMP)
	$(PY) -m emulator serve --port 9100 --data-dir .demo/emulator --time-scale 60 --seed-file include/demo_fleet.yaml

demo: $(STAMP)
	$(PY) scripts/demo.py start

stop:
	@test -x $(PY) && $(PY) scripts/demo.py stop || true

cluster: $(STAMP)
	$(PY) scripts/cluster.py start

cluster-stop:
	@test -x $(PY) && $(PY) scripts/cluster.py stop || true

bench: $(STAMP)
	$(PY) -m bench

clean: stop cluster-stop
	rm -rf .demo .cluster
