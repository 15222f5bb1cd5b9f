"""Runtimes: one Runner interface over torch, ONNX Runtime and TensorRT. Never imports exporters."""
