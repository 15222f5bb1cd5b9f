"""Load time of a ~90 MB .safetensors checkpoint: our reader (the safetensors package on the file's bytes)
against the package's memory-mapped ``load_file`` and, optionally, the hand-written parser we had before.

    .venv/bin/python scripts/bench_safetensors.py                       # ours vs load_file
    .venv/bin/python scripts/bench_safetensors.py --old-rev ee7f451~1   # + the former parser, from git

Readers run interleaved in one process, each round reading the whole file and touching every tensor
(a memory-mapped read that is never touched would measure nothing); the median of the rounds after
the first is reported. The file stays in the page cache, so this measures parsing and copying, not
the disk.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from acmix_deploy.checkpoint.safetensors_io import read_safetensors  # noqa: E402


def checkpoint_like(megabytes: int) -> dict[str, torch.Tensor]:
    """Large fp32 matrices plus many small vectors, as in a classifier checkpoint."""
    g = torch.Generator().manual_seed(0)
    big = max(1, megabytes * 1_000_000 // (4 * 512 * 2048))
    tensors = {f"layer{i}.weight": torch.randn(512, 2048, generator=g) for i in range(big)}
    return tensors | {f"layer{i}.bias": torch.randn(512, generator=g) for i in range(300)}


def former_reader(rev: str) -> Callable:
    """``read_safetensors`` as it was at git revision ``rev``."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:acmix_deploy/checkpoint/safetensors_io.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.replace("from ..errors import", "from acmix_deploy.errors import")
    path = Path(tempfile.mkdtemp()) / "former_safetensors_io.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("former_safetensors_io", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return lambda p: module.read_safetensors(p)[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--megabytes", type=int, default=90)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--old-rev", help="also time the parser at this git revision")
    args = parser.parse_args()
    from safetensors.torch import load_file, save_file

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.safetensors"
        save_file(checkpoint_like(args.megabytes), path)
        readers: dict[str, Callable] = {
            "ours: package on the bytes": lambda p: read_safetensors(p)[0],
            "package load_file (mmap)": load_file,
        }
        if args.old_rev:
            readers[f"former parser ({args.old_rev})"] = former_reader(args.old_rev)
        times: dict[str, list[float]] = {name: [] for name in readers}
        for _ in range(args.rounds):
            for name, read in readers.items():
                t0 = time.perf_counter()
                tensors = read(path)
                for t in tensors.values():  # touch every page
                    t.view(-1)[:: max(1, 4096 // t.element_size())].sum()
                times[name].append(time.perf_counter() - t0)
                del tensors
        size_mb, threads = path.stat().st_size / 1e6, torch.get_num_threads()
        print(f"{size_mb:.1f} MB, {args.rounds} interleaved rounds, torch threads {threads}")
        for name, samples in times.items():
            median, best = 1000 * statistics.median(samples[1:]), 1000 * min(samples)
            print(f"  {name:32s} median {median:7.1f} ms   min {best:7.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
