# Quick start:  make demo   (set up .venv and audit a model on scikit-learn's digits)
#               make test   (set up .venv and run ruff + the test suite)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: all venv demo test lint clean

all: test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# CPU build of PyTorch first, so that nothing pulls the CUDA wheels.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[torch,ray,images,lm,postgres,http,openai,dp,files,mlflow,dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/miaudit run --data digits --model mlp --out runs/demo --overwrite

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP)
	sh scripts/install-chromium.sh
	sh scripts/postgres.sh $(BIN)/python
	sh scripts/kserve-venv.sh $(PYTHON)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m "not slow" -q

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
