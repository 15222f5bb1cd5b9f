"""What int8 variants of the shipped digits models measure vs fp32 on held-out images: the figures behind
``INT8_TOLERANCE`` (exporters/precision/int8_static.py).

    .venv/bin/python scripts/precision_heldout.py --out /tmp/heldout [--models r26,swin] [--samples 256]

Exports each demo checkpoint to fp32 ONNX (64 px), writes the digits training and test splits, and
quantizes it (minmax) for each int8 target with and without the sensitivity pass, calibrated on the
training split and judged (1) on the held-out 20% of it and (2) on the test split (``eval_dir``), with
the bounds switched off (``MEASURE_ONLY``) so that every figure is printed. Then the same conversion
calibrated on training images scaled 20x down (wrecked calibration), judged on the test split with the
real bounds: it must be refused. Columns: max|diff| as a share of max(1, max|fp32 logit|), the worst
per-image cosine, top-1 agreement with fp32.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from acmix_deploy.datasets import write_digits_folder
from acmix_deploy.exporters.onnx import export_onnx
from acmix_deploy.exporters.precision import INT8_TOLERANCE, MEASURE_ONLY, to_int8
from acmix_deploy.exporters.validate import ParityError
from acmix_deploy.imagefolder import images_under
from acmix_deploy.manifest import read_manifest
from acmix_deploy.preprocess import preprocess

DEMO = Path(__file__).resolve().parents[1] / "acmix_deploy" / "data" / "demo"
MODELS = {"r26": "digits_acmix_resnet26.pth", "swin": "digits_acmix_swin.pth"}


def _row(label: str, parity: dict) -> str:
    share = parity["max_abs_diff"] / max(1.0, parity["max_abs_ref"])
    return f"{label:<44} {share:9.3f} {parity['cosine_min']:8.4f} {parity['top1_agreement']:8.1%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--models", default="r26")
    parser.add_argument("--samples", type=int, default=256)
    args = parser.parse_args()
    train = write_digits_folder(args.out / "digits-train", "train")
    test = write_digits_folder(args.out / "digits-test", "test")
    print(f"bounds: {INT8_TOLERANCE}")
    print(f"{'model target sensitivity judged-on':<44} {'max|diff|':>9} {'cosine':>8} {'top-1':>8}")
    for name in args.models.split(","):
        fp32 = args.out / f"{name}.onnx"
        if not fp32.exists():
            export_onnx(DEMO / MODELS[name], fp32, img_size=64, measure_latency=False)
        dst = args.out / f"{name}.int8.onnx"
        for target in ("cpu", "tensorrt"):
            for sensitivity in (True, False):
                for eval_dir in (None, test):
                    report = to_int8(
                        fp32, dst, calibration=train, target=target, samples=args.samples, sensitivity=sensitivity,
                        eval_dir=eval_dir, tolerance=MEASURE_ONLY, force=True,
                    )  # fmt: skip
                    judged = "test split" if eval_dir else "held-out 20% of train"
                    label = f"{name} {target} {'on' if sensitivity else 'off'} {judged}"
                    print(_row(label, report.parity), flush=True)
        manifest = read_manifest(fp32)
        wrecked = 0.05 * preprocess(sorted(images_under(train))[:32], manifest.preprocessing)
        try:
            to_int8(fp32, dst, calibration=wrecked, eval_dir=test, sensitivity=False, force=True)
            print(f"{name} wrecked calibration: NOT refused")
        except ParityError as exc:
            print(_row(f"{name} cpu wrecked calibration (refused)", exc.report.to_dict()), flush=True)


if __name__ == "__main__":
    main()
