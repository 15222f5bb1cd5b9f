"""Triton ``config.pbtxt`` for our artifacts: written from a manifest and serving settings, and read back.

The config is protobuf text written without a protobuf dependency (the tests parse it with
Triton's own ``ModelConfig`` schema): every string is escaped by ``triton_check.quote`` and the
text is read back by ``triton_check.check_config`` before it is returned, so a config that would
say anything other than what was meant (another backend, extra fields) is never written.
Reading back covers what this module writes: the serving settings of a config it produced, so
that adding a version to a model keeps them. A config that does not come out again identically
from the settings read back was edited by hand (or describes another artifact); callers then
keep it untouched or refuse to change it, never rewrite it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from acmix_deploy.manifest import Manifest

from .triton_check import ConfigTextError, check_config, quote

# ORT's TensorRT accelerator in Triton takes the precision to build its engines in.
PRECISION_MODES = {"fp32": "FP32", "fp16": "FP16", "int8": "INT8"}
KINDS = ("cpu", "gpu")


@dataclass(frozen=True)
class ServingSettings:
    """How Triton serves a model: batching, instances, accelerator, warm-up (the config's non-model parts)."""

    max_batch: int
    preferred: tuple[int, ...]
    max_queue_delay_us: int = 100
    instances: int = 1
    kind: str = "cpu"
    ort_precision: str | None = None  # ORT TensorRT accelerator's precision_mode; None: no accelerator
    warmup: bool = True

    def changed(self, **changes: object) -> ServingSettings:
        return replace(self, **changes)


def config_text(name: str, platform: str, manifest: Manifest, settings: ServingSettings) -> str:
    """The ``config.pbtxt`` serving ``manifest``'s artifact as model ``name``."""
    size, classes = manifest.img_size, manifest.num_classes
    fixed = not manifest.batch.dynamic
    in_dims, out_dims = [3, size, size], [classes]
    if fixed:
        in_dims, out_dims = [manifest.batch.max, *in_dims], [manifest.batch.max, *out_dims]
    max_batch = 0 if fixed else settings.max_batch
    lines = [
        f"name: {quote(name)}",
        f"platform: {quote(platform)}",
        f"max_batch_size: {max_batch}",
        *_tensor("input", manifest.input_name, in_dims, before_dims=["format: FORMAT_NCHW"]),
        *_tensor("output", manifest.output_name, out_dims, after_dims=['label_filename: "labels.txt"']),
        "instance_group [",
        "  {",
        f"    count: {settings.instances}",
        f"    kind: KIND_{settings.kind.upper()}",
        "  }",
        "]",
    ]
    if not fixed:
        lines += [
            "dynamic_batching {",
            f"  preferred_batch_size: [ {', '.join(map(str, settings.preferred))} ]",
            f"  max_queue_delay_microseconds: {settings.max_queue_delay_us}",
            "}",
        ]
    if settings.ort_precision is not None:
        lines += [
            "optimization {",
            "  execution_accelerators {",
            "    gpu_execution_accelerator: [",
            "      {",
            '        name: "tensorrt"',
            f'        parameters {{ key: "precision_mode" value: {quote(settings.ort_precision)} }}',
            '        parameters { key: "max_workspace_size_bytes" value: "4294967296" }',
            "      }",
            "    ]",
            "  }",
            "}",
        ]
    pre = json.dumps(manifest.preprocessing.to_dict())
    lines += ["parameters {", '  key: "acmix_deploy.preprocessing"', f"  value {{ string_value: {quote(pre)} }}", "}"]
    if settings.warmup:
        lines += _warmup(manifest.input_name, in_dims, 0 if fixed else 1)
    text = "\n".join(lines) + "\n"
    try:
        check_config(
            text,
            name=name,
            platform=platform,
            max_batch=max_batch,
            tensors={"input": (manifest.input_name, in_dims), "output": (manifest.output_name, out_dims)},
            parameters={"acmix_deploy.preprocessing": pre},
            warmup_input=manifest.input_name if settings.warmup else None,
        )
    except ConfigTextError as exc:
        raise ConfigTextError(f"the config written for {name!r} does not read back as meant ({exc})") from None
    return text


def _tensor(
    section: str, name: str, dims: list[int], *, before_dims: Sequence[str] = (), after_dims: Sequence[str] = ()
) -> list[str]:
    fields = [f"name: {quote(name)}", "data_type: TYPE_FP32", *before_dims, f"dims: [ {', '.join(map(str, dims))} ]"]
    return [f"{section} [", "  {", *(f"    {f}" for f in [*fields, *after_dims]), "  }", "]"]


def _warmup(input_name: str, dims: list[int], batch_size: int) -> list[str]:
    return [
        "model_warmup [",
        "  {",
        '    name: "random_input"',
        f"    batch_size: {batch_size}",
        "    inputs {",
        f"      key: {quote(input_name)}",
        "      value {",
        "        data_type: TYPE_FP32",
        f"        dims: [ {', '.join(map(str, dims))} ]",
        "        random_data: true",
        "      }",
        "    }",
        "  }",
        "]",
    ]


def signature(config: str) -> str:
    """The parts of a config that every version must share: platform, inputs, outputs."""
    keep = re.sub(r"(?s)(instance_group|dynamic_batching|optimization|parameters|model_warmup).*", "", config)
    keep = re.sub(r"max_batch_size: \d+\n", "", keep)
    return re.sub(r'name: "[^"]*"\n', "", keep, count=1)


def read_settings(config: str) -> ServingSettings | None:
    """The serving settings of a config this module wrote; None when it lacks one of them."""
    batch = re.search(r"^max_batch_size: (\d+)$", config, re.M)
    group = re.search(r"instance_group \[\n  \{\n    count: (\d+)\n    kind: KIND_(CPU|GPU)\n", config)
    if batch is None or group is None:
        return None
    preferred = re.search(r"^  preferred_batch_size: \[ ([0-9, ]+) \]$", config, re.M)
    delay = re.search(r"^  max_queue_delay_microseconds: (\d+)$", config, re.M)
    precision = re.search(r'key: "precision_mode" value: "(\w+)"', config)
    return ServingSettings(
        max_batch=int(batch.group(1)),
        preferred=tuple(int(b) for b in preferred.group(1).split(", ")) if preferred else (),
        max_queue_delay_us=int(delay.group(1)) if delay else ServingSettings.max_queue_delay_us,
        instances=int(group.group(1)),
        kind=group.group(2).lower(),
        ort_precision=precision.group(1) if precision else None,
        warmup="model_warmup [" in config,
    )
