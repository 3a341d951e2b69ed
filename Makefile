# Two commands do all set-up on a fresh machine with Python 3.11 and pip:
#   make demo   creates .venv and runs the main job on embedded data: a small MV_Hybrid pretrained
#               on 2 CPU cores (the :demo config, minutes), its teacher against a random init of
#               the same architecture on classification and gene expression, then expression maps
#               of a synthetic slide from its probe
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
	$(VENV)/bin/python train.py --config=configs/mvhybrid_crc.py:demo --workdir=runs/demo
	$(VENV)/bin/python eval.py --config=configs/eval_cls.py:demo --workdir=runs/demo_cls \
	  --config.checkpoint=runs/demo,random
	$(VENV)/bin/python eval.py --config=configs/eval_st.py:demo --workdir=runs/demo_st \
	  --config.checkpoint=runs/demo,random
	$(VENV)/bin/python predict.py --config=configs/predict.py:demo --workdir=runs/demo_predict

# Two workers, each test file on one (its module fixtures compiled once): 12-15 minutes on 2 cores
# (2026-12-05; up to 25 when the machine ran slow); one pytest process alone peaked near 5 GB.
test: $(STAMP)
	$(VENV)/bin/python -m pytest -n 2 --dist loadfile
