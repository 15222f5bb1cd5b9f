"""Throughput and latency through ``acmix-deploy serve`` (Triton; HTTP and gRPC) against the in-process Predictor.

For each concurrency level, that many client threads send batch-1 requests back to back for a fixed
time and every request's latency is recorded. The sides, all at the same concurrency and with the
same ONNX model on ONNX Runtime with the same intra-op thread setting:

* ``http`` / ``grpc``: tritonclient threads against the Triton server (Triton's dynamic batcher on);
* ``predictor``: the same number of threads calling ``Predictor.infer`` in this process;
* ``batching``: those threads calling an in-process ``BatchingPredictor`` (same batch limit and
  queue delay as the server's), i.e. micro-batching without a server.

The server runs in its own process (a fresh interpreter, as ``acmix-deploy serve`` runs), so the clients'
Python work does not compete with the server's handlers for this process's GIL. The sides run in
turn, concurrency level by level, round after round (the order rotates each round), so a noisy
neighbour hits them all alike; each cell reports the median over rounds of requests/s, p50 and p99.
What the server costs is then the gap between ``http``/``grpc`` and ``predictor``: HTTP/gRPC and
(de)serialisation, Triton's scheduler and dynamic batcher wait, the Python backend's stub process
and the shared-memory/IPC hand-off to the process that runs the model.

    python scripts/bench_serve.py [ARTIFACT] --concurrency 1,2,4,8 --seconds 3 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from importlib import resources
from pathlib import Path

import numpy as np

SIDES = ("http", "grpc", "predictor", "batching")


def run_clients(make_send, concurrency: int, seconds: float, size: int) -> tuple[float, float, float, int]:
    """Requests/s, p50 and p99 latency (ms) and request count of ``concurrency`` threads, batch-1 each."""
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors: list[BaseException] = []
    stop_at = [float("inf")]
    barrier = threading.Barrier(concurrency + 1)

    def work(i: int) -> None:
        x = np.random.default_rng(i).standard_normal((1, 3, size, size)).astype(np.float32)
        try:
            send = make_send()
            send(x)  # warm-up (connection set-up), untimed
        except BaseException as exc:  # noqa: BLE001 - reported after the barrier
            errors.append(exc)
        barrier.wait()
        if errors:
            return
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
    if errors:
        raise errors[0]
    elapsed = time.perf_counter() - started
    flat = np.array([v for per in latencies for v in per]) * 1000
    return len(flat) / elapsed, float(np.percentile(flat, 50)), float(np.percentile(flat, 99)), len(flat)


def demo_onnx(folder: Path) -> Path:
    from acmix_deploy.exporters.onnx import export_onnx

    checkpoint = Path(str(resources.files("acmix_deploy").joinpath("data/demo/digits_acmix_resnet26.pth")))
    path = folder / "digits.onnx"
    export_onnx(checkpoint, path, img_size=64, validate_batches=[1], max_batch=16)
    return path


def serve_child(artifact: str, options: dict) -> None:
    """The server's own process: start, print ``ready MAX_BATCH``, serve until stdin closes."""
    from acmix_deploy.serving import ServeOptions, Server

    with Server(artifact, ServeOptions(**options)) as server:
        print("ready", server.max_batch, flush=True)
        sys.stdin.read()


def start_server(artifact: Path, options: dict) -> tuple[subprocess.Popen, int]:
    """Spawn :func:`serve_child` in a fresh interpreter; its process and max batch."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve-child", json.dumps([str(artifact), options])],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    for line in proc.stdout:  # anything the server's libraries print before it is ready is passed on
        if line.startswith("ready "):
            return proc, int(line.split()[1])
        print(line, end="", file=sys.stderr)
    raise SystemExit(f"error: the server did not start (exit {proc.wait()})")


STAT_FIELDS = ("success", "queue", "compute_input", "compute_infer", "compute_output")


def model_stats(url: str, model: str = "bench") -> np.ndarray:
    """Triton's counters of ``model`` so far, from its statistics endpoint.

    [requests, executions, then the total ns of each of ``STAT_FIELDS``]: a request's time in the
    server (``success``) split into its wait in the batcher's queue and the execution's compute
    phases, where ``compute_infer`` is the hand-off to the model's process and back plus the model.
    """
    import urllib.request

    with urllib.request.urlopen(f"http://{url}/v2/models/{model}/stats", timeout=10) as response:
        stats = json.loads(response.read())["model_stats"][0]
    times = [int(stats["inference_stats"][field]["ns"]) for field in STAT_FIELDS]
    return np.array([int(stats["inference_count"]), int(stats["execution_count"]), *times], dtype=np.int64)


def main() -> int:
    if sys.argv[1:2] == ["--serve-child"]:
        serve_child(*json.loads(sys.argv[2]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", nargs="?", type=Path, help="ONNX model (default: the digits demo, exported)")
    parser.add_argument("--concurrency", default="1,2,4,8")
    parser.add_argument("--seconds", type=float, default=3.0, help="per cell (side x level x round)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sides", default=",".join(SIDES), help=f"any of {','.join(SIDES)}")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads, every side")
    parser.add_argument("--instances", type=int, default=2, help="Triton model instances")
    parser.add_argument("--max-queue-delay-us", type=int, default=500, help="server's and batching side's wait")
    parser.add_argument("--port", type=int, default=18650, help="HTTP port; gRPC and metrics take the next two")
    args = parser.parse_args()
    sides = [s for s in args.sides.split(",") if s]
    if not sides or set(sides) - set(SIDES):
        parser.error(f"--sides: any of {','.join(SIDES)}")
    import tritonclient.grpc as grpc
    import tritonclient.http as http

    from acmix_deploy import BatchingPredictor, Predictor

    levels = [int(c) for c in args.concurrency.split(",")]
    options = dict(
        name="bench", http_port=args.port, grpc_port=args.port + 1, metrics_port=args.port + 2,
        instances=args.instances, threads=args.threads, max_queue_delay_us=args.max_queue_delay_us,
        exit_timeout_s=1,
    )  # fmt: skip
    cells: dict[tuple[str, int], list[tuple[float, float, float, int]]] = {}
    served = {c: np.zeros(2 + len(STAT_FIELDS), np.int64) for c in levels}  # model_stats deltas, HTTP + gRPC
    with tempfile.TemporaryDirectory() as tmp:
        artifact = args.artifact or demo_onnx(Path(tmp))
        proc, max_batch = start_server(artifact, options)
        http_url, grpc_url = f"127.0.0.1:{args.port}", f"127.0.0.1:{args.port + 1}"
        try:
            with Predictor.load(artifact, threads=args.threads) as predictor:
                size = predictor.manifest.img_size
                batcher = BatchingPredictor(
                    predictor, max_batch_size=max_batch, max_delay_ms=args.max_queue_delay_us / 1000, workers=2
                )

                def http_send():
                    client = http.InferenceServerClient(http_url, network_timeout=60)

                    def send(x):
                        inp = http.InferInput("input", list(x.shape), "FP32")
                        inp.set_data_from_numpy(x)
                        return client.infer("bench", [inp]).as_numpy("logits")

                    return send

                def grpc_send():
                    client = grpc.InferenceServerClient(grpc_url)

                    def send(x):
                        inp = grpc.InferInput("input", list(x.shape), "FP32")
                        inp.set_data_from_numpy(x)
                        return client.infer("bench", [inp]).as_numpy("logits")

                    return send

                makers = {
                    "http": http_send, "grpc": grpc_send,
                    "predictor": lambda: predictor.infer, "batching": lambda: batcher.infer,
                }  # fmt: skip
                for r in range(args.rounds):
                    order = sides[r % len(sides) :] + sides[: r % len(sides)]
                    for c in levels:
                        for side in order:
                            remote = side in ("http", "grpc")
                            before = model_stats(http_url) if remote else 0
                            cells.setdefault((side, c), []).append(run_clients(makers[side], c, args.seconds, size))
                            served[c] += (model_stats(http_url) - before) if remote else 0
                batcher.close()
        finally:
            proc.stdin.close()
            proc.wait(timeout=30)
    print(f"{artifact.name} ({size} px): ORT intra-op threads {args.threads}, Triton {args.instances} instances, "
          f"max batch {max_batch}, queue delay {args.max_queue_delay_us} us; batch-1 requests, "
          f"{args.seconds:g} s per cell, median of {args.rounds} interleaved rounds")  # fmt: skip
    print("| clients | side | req/s | p50 ms | p99 ms | req/s vs predictor |")
    print("|---:|---|---:|---:|---:|---:|")
    for c in levels:
        base = statistics.median(v[0] for v in cells[("predictor", c)]) if "predictor" in sides else None
        for side in sides:
            rps, p50, p99 = (statistics.median(v[k] for v in cells[(side, c)]) for k in range(3))
            ratio = f"{rps / base:.2f}x" if base else "-"
            print(f"| {c} | {side} | {rps:.0f} | {p50:.2f} | {p99:.2f} | {ratio} |")
    for c in levels:
        requests, executions, *ns = served[c]
        if executions:
            ms = {field: t / requests / 1e6 for field, t in zip(STAT_FIELDS, ns, strict=True)}
            print(f"Triton at {c} client(s): {requests} requests in {executions} executions "
                  f"({requests / executions:.2f} rows each); per request in the server {ms['success']:.2f} ms: "
                  f"queue {ms['queue']:.2f}, compute input {ms['compute_input']:.2f}, "
                  f"infer {ms['compute_infer']:.2f}, output {ms['compute_output']:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
