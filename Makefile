# Two commands on a fresh machine: `make demo` (the main job on ONNX Runtime, CPU) and `make test`.
# Each creates ./.venv on first use. TORCH_SPEC pins a CPU build of torch, installed before the
# project when the venv has no torch (a bare `torch` requirement would resolve to a multi-GB CUDA build).
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
DEMO_DIR ?= demo-out

.PHONY: demo test gpu lint clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

# The main job on ONNX Runtime (CPU), the whole story on a trained ACmix-ResNet checkpoint (shipped, official
# layout): export fp32 + fp16 + int8 (calibrated on the training split, each validated and measured),
# evaluate all three on the held-out digits in one table, predict, verify, benchmark all in one table.
DEMO_CKPT := acmix_deploy/data/demo/digits_acmix_resnet26.pth
DEMO_ONNX := $(DEMO_DIR)/digits_r26.onnx $(DEMO_DIR)/digits_r26.fp16.onnx $(DEMO_DIR)/digits_r26.int8.onnx
demo: $(BIN)/.installed
	$(BIN)/acmix-deploy models
	$(BIN)/acmix-deploy inspect $(DEMO_CKPT)
	$(BIN)/python -c "from acmix_deploy.datasets import write_digits_folder as w; \
		w('$(DEMO_DIR)/digits-test', 'test'); w('$(DEMO_DIR)/digits-calib', 'train')"
	$(BIN)/acmix-deploy export $(DEMO_CKPT) -o $(DEMO_DIR) --name digits_r26 \
		--labels acmix_deploy/data/demo/digits_labels.txt --precision fp32,fp16,int8 \
		--calib $(DEMO_DIR)/digits-calib --eval-data $(DEMO_DIR)/digits-test --force
	$(BIN)/acmix-deploy evaluate $(DEMO_CKPT) $(DEMO_ONNX) --data $(DEMO_DIR)/digits-test
	$(BIN)/acmix-deploy predict $(DEMO_DIR)/digits_r26.onnx $$(ls -d $(DEMO_DIR)/digits-test/7/*.png | head -2) --top-k 2
	$(BIN)/acmix-deploy verify $(DEMO_CKPT) $(DEMO_DIR)/digits_r26.onnx --no-rewrite
	$(BIN)/acmix-deploy benchmark $(DEMO_ONNX) $(DEMO_CKPT) --batch 1,8 --iters 10 --force --save-json $(DEMO_DIR)/benchmark.json

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q

lint: $(BIN)/.installed
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) $(DEMO_DIR)

# The GPU suite and the GPU benchmark, for a machine with an NVIDIA GPU (CUDA torch, TensorRT, onnxruntime-gpu).
# TORCH_SPEC picks the CUDA build there: make gpu TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
gpu: $(BIN)/.installed
	$(BIN)/pip install --quiet -e ".[tensorrt]"
	$(BIN)/python -m pytest -m "gpu or tensorrt" -v -rs -s
	$(BIN)/python scripts/bench_gpu.py --models acmix_resnet50,acmix_swin_tiny --batches 1,8,32 --out gpu-bench
