# Two commands on a fresh machine: `make demo` (the main job on ONNX Runtime, CPU) and `make test`.
# Each creates ./.venv on first use. TORCH_SPEC pins a CPU build of torch, installed before the
# project when the venv has no torch (a bare `torch` requirement would resolve to a multi-GB CUDA build).
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
DEMO_DIR ?= demo-out

.PHONY: demo test lint clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

demo: $(BIN)/.installed
	$(BIN)/acmix-deploy models
	$(BIN)/acmix-deploy init acmix_resnet26 -o $(DEMO_DIR)/acmix_resnet26.pth --force
	$(BIN)/acmix-deploy inspect $(DEMO_DIR)/acmix_resnet26.pth

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q

lint: $(BIN)/.installed
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) $(DEMO_DIR)
