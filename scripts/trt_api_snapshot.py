"""Snapshots of the real TensorRT Python API, read from NVIDIA's compiled bindings on a machine without TensorRT.

The Python bindings of TensorRT are a small wheel (``tensorrt-cu12-bindings``, ~1.3 MB) whose
extension module links three native libraries (``libnvinfer.so.N``, ``libnvonnxparser.so.N``,
``libnvinfer_plugin.so.N``, together gigabytes, and useless without a GPU). Only nine C entry
points of theirs are resolved when the module loads, so inert stand-ins built from a few lines
of C (every entry point returns NULL/0) let the real module import on any Linux machine with
gcc. Then every class, member, member kind (property or method), pybind11 signature and enum
value of the real API can be read, and our TensorRT code can run against the real Python API up
to its first native call (which then fails, like it does on a machine without a GPU).

This script does it all from scratch: download the wheels from the package index (``pip
download``), unpack them, build the stub libraries, import each release in a child process and
write one JSON snapshot per release to ``tests/exporters/tensorrt/api/``. The CPU tests read
those snapshots (``tests/exporters/test_tensorrt_api.py``); the same helpers (:func:`prepare`,
:func:`load_bindings`) let a test import the real bindings where wheels and gcc are available.

Usage::

    python scripts/trt_api_snapshot.py                      # the releases in VERSIONS
    python scripts/trt_api_snapshot.py --versions 10.16.1.11 --cache /tmp/trt-bindings
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

#: TensorRT 10.0 (the oldest release we support), the newest 10.x and the newest 11.x on the index.
VERSIONS = ("10.0.1", "10.16.1.11", "11.4.0.106")
WHEEL = "tensorrt-cu12-bindings"
NATIVE_LIBRARIES = ("libnvinfer", "libnvonnxparser", "libnvinfer_plugin")
#: The C entry points the bindings resolve at load time (the same nine in 10.0 .. 11.4); a release
#: needing another one is noticed at import ("undefined symbol") and the stubs are rebuilt with it.
STUB_SYMBOLS = (
    "createInferBuilder_INTERNAL",
    "createInferRefitter_INTERNAL",
    "createInferRuntime_INTERNAL",
    "createNvOnnxParser_INTERNAL",
    "createNvOnnxParserRefitter_INTERNAL",
    "getBuilderPluginRegistry",
    "getNvOnnxParserVersion",
    "getPluginRegistry",
    "initLibNvInferPlugins",
)
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "tests" / "exporters" / "tensorrt" / "api"
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "acmix-deploy-trt-bindings"
SNAPSHOT_FORMAT = "acmix-deploy.tensorrt-api-snapshot"
MODULE_PREFIX = re.compile(r"tensorrt_bindings\.tensorrt\.|tensorrt_bindings\.")


class SnapshotError(RuntimeError):
    """The wheel could not be fetched, the stubs built, or the bindings imported."""


@dataclass(frozen=True)
class Bindings:
    """One release's unpacked bindings and the stub libraries that let them import."""

    version: str
    site: Path  # the directory holding the ``tensorrt_bindings`` package
    stubs: Path  # the directory holding libnvinfer.so.N and friends (stand-ins)
    wheel: Path

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])


def fetch_wheel(version: str, cache: Path, *, timeout: float = 120) -> Path:
    """The bindings wheel of ``version`` for this interpreter, downloaded with pip into ``cache`` once."""
    wheels = cache / "wheels"
    found = sorted(wheels.glob(f"tensorrt_cu12_bindings-{version}-*.whl"))
    if found:
        return found[0]
    wheels.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
    cmd += ["-d", str(wheels), f"{WHEEL}=={version}"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SnapshotError(f"pip download {WHEEL}=={version} failed: {exc}") from None
    found = sorted(wheels.glob(f"tensorrt_cu12_bindings-{version}-*.whl"))
    if done.returncode != 0 or not found:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise SnapshotError(f"pip download {WHEEL}=={version} failed: {tail[0]}")
    return found[0]


def build_stubs(major: int, dest: Path, symbols: tuple[str, ...] = STUB_SYMBOLS) -> Path:
    """Compile ``libnvinfer.so.<major>`` and the two others as inert libraries exporting ``symbols``.

    Each library gets the real one's soname, so once it is loaded (:func:`load_bindings`) the
    dynamic linker resolves the extension's dependency to it.
    """
    if shutil.which("gcc") is None:
        raise SnapshotError("gcc is needed to build the stand-in TensorRT libraries")
    dest.mkdir(parents=True, exist_ok=True)
    source = dest / "stub.c"
    body = "\n".join(f"void *{name}(void) {{ return 0; }}" for name in symbols)
    source.write_text("/* Inert stand-ins: every TensorRT entry point returns NULL / 0. */\n" + body + "\n")
    for lib in NATIVE_LIBRARIES:
        soname = f"{lib}.so.{major}"
        cmd = ["gcc", "-shared", "-fPIC", "-O0", f"-Wl,-soname,{soname}", "-o", str(dest / soname), str(source)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SnapshotError(f"gcc failed building {soname}: {done.stderr.strip()[:300]}")
    return dest


def load_bindings(site: str | Path, stubs: str | Path):
    """Import the real ``tensorrt_bindings`` from ``site`` over the stubs in ``stubs``; also as ``tensorrt``.

    Call it in a process of its own: the stand-in libraries stay loaded for the process's life.
    """
    for path in sorted(Path(stubs).glob("lib*.so.*")):
        ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
    sys.path.insert(0, str(site))
    import tensorrt_bindings

    sys.modules["tensorrt"] = tensorrt_bindings
    return tensorrt_bindings


def prepare(version: str, cache: Path = DEFAULT_CACHE) -> Bindings:
    """Download, unpack and stub ``version`` under ``cache`` (reused when already there), checked to import.

    Raises:
        SnapshotError: no wheel for this interpreter, no gcc, or the bindings do not import.
    """
    wheel = fetch_wheel(version, cache)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()[:16]
    root = cache / f"{version}-{digest}"
    if not (root / "ok").exists():
        work = Path(tempfile.mkdtemp(prefix=f"{version}-", dir=cache))
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(work / "site")
        symbols = STUB_SYMBOLS
        for _ in range(20):  # a release that resolves one more entry point gets it added
            build_stubs(int(version.split(".")[0]), work / "stubs", symbols)
            missing = _import_problem(work / "site", work / "stubs")
            if missing is None:
                break
            if not missing.startswith("undefined symbol: "):
                raise SnapshotError(f"TensorRT {version} bindings do not import over the stubs: {missing}")
            symbols = (*symbols, missing.removeprefix("undefined symbol: "))
        else:
            raise SnapshotError(f"TensorRT {version} bindings keep asking for more native symbols")
        (work / "ok").write_text(version)
        try:
            os.replace(work, root)  # atomic: a concurrent run either sees it all or builds its own
        except OSError:
            shutil.rmtree(work, ignore_errors=True)  # another run got there first
    return Bindings(version, root / "site", root / "stubs", wheel)


def _import_problem(site: Path, stubs: Path) -> str | None:
    """``None`` when the bindings import over the stubs in a child process, else the reason."""
    code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import trt_api_snapshot as s; "
    code += f"s.load_bindings({str(site)!r}, {str(stubs)!r})"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if done.returncode == 0:
        return None
    match = re.search(r"undefined symbol: (\w+)", done.stderr)
    return f"undefined symbol: {match.group(1)}" if match else (done.stderr.strip().splitlines() or ["?"])[-1]


# ---------------------------------------------------------------- reading the API (in the child process)

KEPT_DUNDERS = ("__init__", "__call__", "__members__", "__version__")


def _signatures(name: str, doc: str | None) -> list[str]:
    """The pybind11 signature lines of ``doc`` (one per overload), module prefixes dropped."""
    lines = []
    for line in (doc or "").splitlines():
        line = re.sub(r"^\d+\. ", "", line.strip())
        if line.startswith(f"{name}(") or (name == "__init__" and line.startswith("__init__(")):
            lines.append(MODULE_PREFIX.sub("", line))
    return lines


def _entry(owner: object, name: str, value: object) -> dict:
    """Kind (and signatures, enum values, types) of ``owner.name``, read without calling anything."""
    if inspect.isclass(value):
        entry: dict = {"kind": "enum" if hasattr(value, "__members__") and hasattr(value, "name") else "class"}
        if entry["kind"] == "enum":
            entry["values"] = {k: int(v) for k, v in value.__members__.items()}
        return entry
    if isinstance(value, property):
        fget_doc = getattr(value.fget, "__doc__", "") or ""
        match = re.search(r"\) -> ([\w.\[\], ]+)", fget_doc)
        entry = {"kind": "property", "settable": value.fset is not None}
        if match:
            entry["type"] = MODULE_PREFIX.sub("", match.group(1).strip())
        return entry
    if isinstance(value, staticmethod):
        return {"kind": "staticmethod", "signatures": _signatures(name, value.__func__.__doc__)}
    if inspect.isclass(owner) and isinstance(value, owner):
        return {"kind": "member", "value": int(value)} if hasattr(value, "__int__") else {"kind": "value"}
    if callable(value):
        kind = "function" if inspect.ismodule(owner) else "method"
        return {"kind": kind, "signatures": _signatures(name, getattr(value, "__doc__", None))}
    return {"kind": "value", "type": type(value).__name__}


def describe_api(trt) -> dict[str, dict]:
    """Every public name of the module and of its classes (two levels deep), as ``{dotted path: entry}``."""
    api: dict[str, dict] = {}

    def visit(owner: object, prefix: str, depth: int) -> None:
        for name in sorted(dir(owner)):
            private = name.startswith("_") and not name.startswith("__")
            if private or (name.startswith("__") and name not in KEPT_DUNDERS):
                continue
            try:
                value = inspect.getattr_static(owner, name)
            except AttributeError:
                continue
            if isinstance(value, type) and value.__module__ in ("builtins", "typing", "enum"):
                continue
            path = f"{prefix}{name}"
            api[path] = _entry(owner, name, value)
            if inspect.isclass(value) and depth < 2 and value.__module__.startswith("tensorrt"):
                visit(value, f"{path}.", depth + 1)

    visit(trt, "", 0)
    return api


def dump(site: str, stubs: str, out: str, wheel: str) -> None:
    """Child-process entry: import the bindings and write their snapshot to ``out``."""
    trt = load_bindings(site, stubs)
    snapshot = {
        "format": SNAPSHOT_FORMAT,
        "tensorrt_version": str(trt.__version__),
        "wheel": Path(wheel).name,
        "wheel_sha256": hashlib.sha256(Path(wheel).read_bytes()).hexdigest(),
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "generated_by": "scripts/trt_api_snapshot.py",
        "api": describe_api(trt),
    }
    Path(out).write_text(render_snapshot(snapshot))


def render_snapshot(snapshot: dict) -> str:
    """JSON with one API name per line (small, and a new release's diff reads name by name)."""
    head = {k: v for k, v in snapshot.items() if k != "api"}
    lines = [f"  {json.dumps(k)}: {json.dumps(v)}," for k, v in sorted(head.items())]
    names = [f"    {json.dumps(k)}: {json.dumps(v, sort_keys=True)}" for k, v in sorted(snapshot["api"].items())]
    return "{\n" + "\n".join(lines) + '\n  "api": {\n' + ",\n".join(names) + "\n  }\n}\n"


def snapshot_path(out_dir: Path, version: str) -> Path:
    return out_dir / f"tensorrt-{version}.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", nargs="+", default=list(VERSIONS))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--child-dump", nargs=4, metavar=("SITE", "STUBS", "OUT", "WHEEL"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_dump:
        dump(*args.child_dump)
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    args.cache.mkdir(parents=True, exist_ok=True)
    for version in args.versions:
        try:
            bindings = prepare(version, args.cache)
        except SnapshotError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        out = snapshot_path(args.out, version)
        cmd = [sys.executable, __file__, "--child-dump", str(bindings.site), str(bindings.stubs), str(out)]
        done = subprocess.run([*cmd, str(bindings.wheel)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"error: dumping TensorRT {version} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
            return 1
        entries = len(json.loads(out.read_text())["api"])
        print(f"{out}: TensorRT {version}, {entries} names ({out.stat().st_size / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
