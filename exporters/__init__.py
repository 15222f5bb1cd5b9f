"""Exporters: ONNX (with graph passes and validation), precision variants, TensorRT engines, Triton repositories."""
