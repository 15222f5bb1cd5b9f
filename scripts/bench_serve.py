"""Throughput and latency through ``acmix-deploy serve`` (Triton, HTTP) against the in-process Predictor.

For each concurrency level, that many client threads send batch-1 requests back to back for a fixed
time; the same thread count then calls ``Predictor.infer`` in this process. Both sides run the same
ONNX model on ONNX Runtime with the same thread setting, so the difference is what the server costs:
HTTP, (de)serialisation, the Python backend's stub process and its shared-memory hand-off, and the
dynamic batcher's wait.

    python scripts/bench_serve.py [ARTIFACT.onnx] --concurrency 1,2,4,8 --seconds 5
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from importlib import resources
from pathlib import Path

import numpy as np


def run_clients(call, concurrency: int, seconds: float) -> tuple[float, float, float]:
    """Requests per second, p50 and p99 latency (ms) of ``concurrency`` threads calling ``call(x)``."""
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    stop_at = [0.0]
    barrier = threading.Barrier(concurrency + 1)

    def work(i: int) -> None:
        x = np.random.default_rng(i).standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)
        send = call()
        send(x)  # warm-up, untimed
        barrier.wait()
        while time.perf_counter() < stop_at[0]:
            t0 = time.perf_counter()
            send(x)
            latencies[i].append(time.perf_counter() - t0)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    stop_at[0] = time.perf_counter() + 3600
    barrier.wait()
    started = time.perf_counter()
    stop_at[0] = started + seconds
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    flat = np.array([v for per in latencies for v in per]) * 1000
    return len(flat) / elapsed, float(np.percentile(flat, 50)), float(np.percentile(flat, 99))


def demo_onnx(folder: Path) -> Path:
    from acmix_deploy.exporters.onnx import export_onnx

    checkpoint = Path(str(resources.files("acmix_deploy").joinpath("data/demo/digits_acmix_resnet26.pth")))
    path = folder / "digits.onnx"
    export_onnx(checkpoint, path, img_size=64, validate_batches=[1], max_batch=16)
    return path


def main() -> int:
    global SIZE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", nargs="?", type=Path, help="ONNX model (default: the digits demo, exported)")
    parser.add_argument("--concurrency", default="1,2,4,8")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads, both sides")
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--max-queue-delay-us", type=int, default=500)
    parser.add_argument("--port", type=int, default=18650, help="HTTP port; gRPC and metrics take the next two")
    args = parser.parse_args()
    import tritonclient.http as http

    from acmix_deploy import Predictor
    from acmix_deploy.serving import ServeOptions, Server

    levels = [int(c) for c in args.concurrency.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        artifact = args.artifact or demo_onnx(Path(tmp))
        options = ServeOptions(
            name="bench", http_port=args.port, grpc_port=args.port + 1, metrics_port=args.port + 2,
            instances=args.instances, threads=args.threads, max_queue_delay_us=args.max_queue_delay_us,
            max_batch=None, exit_timeout_s=1,
        )  # fmt: skip
        rows = []
        with Server(artifact, options) as server, Predictor.load(artifact, threads=args.threads) as predictor:
            SIZE = predictor.manifest.img_size
            url = server.endpoints["http"].removeprefix("http://")

            def triton_caller():
                client = http.InferenceServerClient(url, network_timeout=60)

                def send(x):
                    inp = http.InferInput("input", list(x.shape), "FP32")
                    inp.set_data_from_numpy(x)
                    return client.infer("bench", [inp]).as_numpy("logits")

                return send

            for c in levels:
                served = run_clients(triton_caller, c, args.seconds)
                local = run_clients(lambda: predictor.infer, c, args.seconds)
                rows.append((c, served, local))
            stats = server.statistics()["model_stats"][0]
    print(f"{artifact.name}: ORT threads {args.threads}, {args.instances} instances, "
          f"queue delay {args.max_queue_delay_us} us, {args.seconds:g} s per cell, batch-1 requests")  # fmt: skip
    print("| clients | served req/s | served p50 ms | served p99 ms | in-process req/s | in-process p50 ms |"
          " in-process p99 ms |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for c, (rps, p50, p99), (lrps, lp50, lp99) in rows:
        print(f"| {c} | {rps:.0f} | {p50:.2f} | {p99:.2f} | {lrps:.0f} | {lp50:.2f} | {lp99:.2f} |")
    print(f"Triton: {stats['inference_count']} requests in {stats['execution_count']} executions")
    return 0


SIZE = 64

if __name__ == "__main__":
    sys.exit(main())
