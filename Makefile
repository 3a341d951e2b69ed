# Two commands do all set-up on a fresh machine with Python 3.11 and pip:
#   make demo   creates .venv and runs the main job on embedded data: the pretraining smoke run,
#               its gene-expression evaluation against a random-init baseline, then expression
#               maps of a synthetic slide from its probe
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
	$(VENV)/bin/python train.py --config=configs/mvhybrid_crc.py:smoke --workdir=runs/smoke
	$(VENV)/bin/python eval.py --config=configs/eval_st.py:smoke --workdir=runs/smoke_eval \
	  --config.checkpoint=runs/smoke,random
	$(VENV)/bin/python predict.py --config=configs/predict.py:smoke --workdir=runs/smoke_predict

test: $(STAMP)
	$(VENV)/bin/python -m pytest
