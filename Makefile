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
	$(BIN)/acmix-deploy export $(DEMO_DIR)/acmix_resnet26.pth -o $(DEMO_DIR) --force
	$(BIN)/python -c "from PIL import Image; Image.radial_gradient('L').convert('RGB').resize((320, 240)).save('$(DEMO_DIR)/demo.png')"
	$(BIN)/acmix-deploy predict $(DEMO_DIR)/acmix_resnet26.onnx $(DEMO_DIR)/demo.png --top-k 3
	$(BIN)/acmix-deploy verify $(DEMO_DIR)/acmix_resnet26.pth $(DEMO_DIR)/acmix_resnet26.onnx --no-rewrite
	$(BIN)/acmix-deploy benchmark $(DEMO_DIR)/acmix_resnet26.onnx $(DEMO_DIR)/acmix_resnet26.pth --batch 1 --iters 5 --force --json $(DEMO_DIR)/benchmark.json

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q

lint: $(BIN)/.installed
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) $(DEMO_DIR)
