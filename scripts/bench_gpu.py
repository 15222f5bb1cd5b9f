"""GPU benchmark: TensorRT fp32 / fp16 vs torch eager vs ONNX Runtime CUDA, batch 1/8/32, interleaved.

Usage (on a GPU machine, after `make gpu` installed what it needs):
    .venv/bin/python scripts/bench_gpu.py [--models acmix_resnet50,acmix_swin_tiny] [--batches 1,8,32]
        [--iters 50] [--out gpu-bench]

Per model (random weights; speed only): an official-layout checkpoint, our fp32 ONNX and its
mixed-precision fp16 ONNX, TensorRT engines from both, then one interleaved benchmark of
    torch eager (the official structure, fp32)   - the reference, "vs first" = 1.00x
    torch eager fp16 (our deploy form, .half())
    ONNX Runtime CUDA (our fp32 ONNX)             - when onnxruntime-gpu is installed
    TensorRT fp32, TensorRT fp16
Latency is end to end per call (host array in, host logits out, synchronised), medians.
Whatever is missing here (TensorRT, the CUDA provider, a GPU) is listed and skipped, so with
`--allow-cpu` the script also runs on a CPU machine as a dry run of its plumbing (torch eager
and ONNX Runtime on CPU only; those numbers say nothing about a GPU).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from acmix_deploy.checkpoint import save_checkpoint
from acmix_deploy.exporters.onnx import export_onnx
from acmix_deploy.exporters.precision import to_fp16
from acmix_deploy.models import build_model
from acmix_deploy.profiling.benchmark import benchmark
from acmix_deploy.runtimes.onnxruntime import OnnxRuntimeRunner
from acmix_deploy.runtimes.torch import TorchRunner


def _tensorrt():
    try:
        import tensorrt
    except ImportError:
        return None
    return tensorrt


def _ort_has_cuda() -> bool:
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def candidates(name: str, work: Path, max_batch: int, gpu: bool, skipped: list[str]) -> list[tuple[str, object]]:
    """(label, runner) pairs for one model, the reference first."""
    work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    ckpt = save_checkpoint(build_model(name), work / f"{name}.pth", name=name, force=True)
    fp32 = export_onnx(ckpt, work / f"{name}.onnx", max_batch=max_batch, validate_batches=[1], force=True).path
    device = "cuda" if gpu else "cpu"
    pairs: list[tuple[str, object]] = [
        (f"torch eager fp32 ({device}, official)", TorchRunner(ckpt, device=device, rewrite=False, max_batch=max_batch))
    ]
    if gpu:
        pairs.append(
            ("torch eager fp16 (deploy form)", TorchRunner(ckpt, device="cuda", fp16=True, max_batch=max_batch))
        )
    if gpu and _ort_has_cuda():
        pairs.append(("onnxruntime CUDA fp32", OnnxRuntimeRunner(fp32, device="cuda")))
    elif gpu:
        skipped.append("onnxruntime CUDA (install onnxruntime-gpu)")
    else:
        pairs.append(("onnxruntime CPU fp32", OnnxRuntimeRunner(fp32)))
    trt = _tensorrt()
    if trt is None or not gpu:
        skipped.append("TensorRT fp32/fp16 (" + ("no tensorrt package" if trt is None else "no GPU") + ")")
        return pairs
    from acmix_deploy.exporters.tensorrt import build_engine
    from acmix_deploy.runtimes.tensorrt import TensorRTRunner

    mixed = to_fp16(fp32, work / f"{name}.fp16.onnx", force=True).path
    cache = work / "timing.cache"
    for label, src, precision in (("TensorRT fp32", fp32, "fp32"), ("TensorRT fp16", mixed, "fp16")):
        engine = src.with_suffix(".engine")
        build_engine(
            src,
            engine,
            precision=precision,
            opt_batch=min(8, max_batch),
            max_batch=max_batch,
            timing_cache=cache,
            force=True,
        )
        pairs.append((label, TensorRTRunner(engine)))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="acmix_resnet50,acmix_swin_tiny")
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path("gpu-bench"))
    parser.add_argument("--allow-cpu", action="store_true", help="run without a GPU (a dry run of the plumbing)")
    args = parser.parse_args()
    gpu = torch.cuda.is_available()
    if not gpu and not args.allow_cpu:
        raise SystemExit("no CUDA GPU visible to torch; pass --allow-cpu for a CPU dry run")
    batches = [int(b) for b in args.batches.split(",")]
    trt = _tensorrt()
    env = {
        "gpu": torch.cuda.get_device_name(0) if gpu else None,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "tensorrt": getattr(trt, "__version__", None),
        "python": platform.python_version(),
    }
    print("environment:", json.dumps(env))
    results = {"environment": env, "models": {}}
    for name in args.models.split(","):
        skipped: list[str] = []
        pairs = candidates(name, args.out / name, max(batches), gpu, skipped)
        labels = [label for label, _ in pairs]
        runners = [runner for _, runner in pairs]
        try:
            result = benchmark(runners, batches=batches, warmup=5, iterations=args.iters)
        finally:
            for runner in runners:
                runner.close()
        for i, row in enumerate(result.rows):
            row.artifact = labels[i % len(labels)]
        print(f"\n{name} ({'GPU ' + env['gpu'] if gpu else 'CPU dry run'}; skipped: {', '.join(skipped) or 'none'})")
        print(result.table())
        results["models"][name] = {"skipped": skipped, "rows": [row.to_dict() for row in result.rows]}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_gpu.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.out / 'bench_gpu.json'}")


if __name__ == "__main__":
    main()
