"""PyTorch backend: a checkpoint run in torch, the deploy rewrite by default.

``rewrite=False`` runs the reference model (the official structure), which is what `verify`
compares everything else against. On CUDA, optional fp16 and channels_last.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from acmix_deploy.checkpoint import resolve_model
from acmix_deploy.errors import InputSizeError
from acmix_deploy.manifest import BatchSpec, Manifest
from acmix_deploy.rewrite import to_deploy

from .base import Runner, RunnerError

DEFAULT_MAX_BATCH = 64


class TorchRunner(Runner):
    backend = "torch"
    thread_safe = False  # one module, shared: serialise calls (torch releases the GIL inside ops anyway)

    def __init__(
        self,
        path: str | Path,
        *,
        device: str = "cpu",
        rewrite: bool = True,
        img_size: int | None = None,
        fp16: bool = False,
        channels_last: bool = False,
        trust_pickle: bool = False,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        super().__init__(path)
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise RunnerError("device cuda requested but torch sees no CUDA GPU")
        if (fp16 or channels_last) and not device.startswith("cuda"):
            raise RunnerError("fp16 and channels_last are CUDA options")
        self.device, self.rewrite, self.img_size = torch.device(device), rewrite, img_size
        self.fp16, self.channels_last, self.trust_pickle, self.max_batch = fp16, channels_last, trust_pickle, max_batch
        self.model: torch.nn.Module | None = None

    def _load(self) -> Manifest:
        try:
            resolved = resolve_model(self.path, self.img_size, trust_pickle=self.trust_pickle)
        except InputSizeError as exc:
            raise RunnerError(str(exc)) from None
        model, size, ckpt, family = resolved.model, resolved.img_size, resolved.checkpoint, resolved.family
        if self.rewrite:
            model = to_deploy(model, img_size=size)
        model = model.to(self.device)
        if self.fp16:
            model = model.half()
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model.eval()
        hparams = ckpt.spec.hparams
        return Manifest(
            family=family.name,
            hparams=hparams,
            img_size=size,
            num_classes=int(hparams["num_classes"]),
            preprocessing=family.preprocessing(size),
            variant=ckpt.spec.variant,
            batch=BatchSpec(max=self.max_batch),
            precision="fp16" if self.fp16 else "fp32",
            rewrite=self.rewrite,
            source={"file": self.path.name, "sha256": ckpt.sha256, "layout": ckpt.layout},
            labels=ckpt.labels,  # names the checkpoint records, as the ONNX exported from it carries them
        )

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch).to(self.device)
        if self.fp16:
            x = x.half()
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            out = self.model(x)
        return out.float().cpu().numpy()

    def infer_phases(self, batch: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
        """CUDA only: logits plus host->device, compute and device->host times from CUDA events (ms).

        The same split trtexec reports (H2D / GPU compute / D2H), measured on the runner's stream.
        """
        if self.device.type != "cuda":
            raise RunnerError("phase timing needs a CUDA device")
        self.activate()
        events = [torch.cuda.Event(enable_timing=True) for _ in range(4)]
        with self._call_lock, torch.inference_mode():
            events[0].record()
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).pin_memory()
            x = x.to(self.device, non_blocking=True)
            if self.fp16:
                x = x.half()
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            events[1].record()
            out = self.model(x)
            events[2].record()
            host = out.float().cpu()
            events[3].record()
            events[3].synchronize()
        phases = {
            "h2d_ms": events[0].elapsed_time(events[1]),
            "compute_ms": events[1].elapsed_time(events[2]),
            "d2h_ms": events[2].elapsed_time(events[3]),
        }
        return host.numpy(), phases

    def _close(self) -> None:
        self.model = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def describe(self) -> str:
        return f"torch{'' if self.rewrite else '-reference'}:{self.path.name}"
