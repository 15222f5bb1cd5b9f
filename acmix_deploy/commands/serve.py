"""Serving an artifact: ``serve`` (a Triton Inference Server on this machine, until SIGINT/SIGTERM)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import BackendOption, at_least, require_files


def serve(
    artifact: Annotated[Path, typer.Argument(help="Checkpoint, ONNX model or engine.")],
    name: Annotated[str | None, typer.Option(help="Model name (default: the file name); images: NAME_images.")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    http_port: Annotated[int, typer.Option(help="HTTP port (KServe v2).")] = 8000,
    grpc_port: Annotated[int, typer.Option(help="gRPC port (KServe v2).")] = 8001,
    metrics_port: Annotated[int, typer.Option(help="Prometheus metrics port.")] = 8002,
    max_batch: Annotated[int | None, typer.Option(help="Triton max_batch_size (default: the artifact's).")] = None,
    max_queue_delay_us: Annotated[int, typer.Option(help="Dynamic batcher wait to gather requests.")] = 500,
    instances: Annotated[int, typer.Option(help="Model instances (concurrent executions) per model.")] = 1,
    top_k: Annotated[int, typer.Option("--top-k", help="Classes the image model returns per image.")] = 5,
    backend: BackendOption = None,
    device: Annotated[str | None, typer.Option(help="Device of the backend (cpu, cuda; a GPU index).")] = None,
    threads: Annotated[int, typer.Option(help="ONNX Runtime intra-op threads (0: default).")] = 0,
    verbose: Annotated[bool, typer.Option("--verbose", help="Triton's log on stdout.")] = False,
) -> None:
    """Serve an artifact with Triton Inference Server: NAME (tensors -> logits) and NAME_images (images -> top-k)."""
    from acmix_deploy.serving import ServeOptions
    from acmix_deploy.serving import serve as run_server

    at_least(1, instances=instances, top_k=top_k, max_batch=max_batch)
    at_least(0, max_queue_delay_us=max_queue_delay_us, threads=threads)
    require_files([artifact])
    options = ServeOptions(
        name=name, host=host, http_port=http_port, grpc_port=grpc_port, metrics_port=metrics_port,
        max_batch=max_batch, max_queue_delay_us=max_queue_delay_us, instances=instances, top_k=top_k,
        backend=backend, device=device, threads=threads, verbose=verbose,
    )  # fmt: skip
    typer.echo(f"starting Triton for {artifact} ...", err=True)
    run_server(artifact, options, on_ready=lambda lines: typer.echo("\n".join(lines)))
    typer.echo("stopped", err=True)
