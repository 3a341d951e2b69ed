# Two commands do all set-up on a fresh machine with Python 3.11 and pip:
#   make demo   creates .venv and runs the main job on embedded data (for now: the scan benchmark)
#   make test   creates .venv and runs the whole test suite
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e ".[test]"
	touch $(STAMP)

.PHONY: demo test
demo: $(STAMP)
	$(VENV)/bin/python benchmarks/scan.py --small

test: $(STAMP)
	$(VENV)/bin/python -m pytest
