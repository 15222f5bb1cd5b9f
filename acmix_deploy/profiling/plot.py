"""``benchmark --plot``: latency and throughput against batch size, as a PNG drawn with Pillow only.

Two panels (p50 latency in ms; throughput in images/s), one line per artifact, each with a
titled y axis, "batch size" on the x axis, tick labels at round values and light gridlines, so a
figure pasted into a report reads without the JSON beside it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .benchmark import BenchmarkResult

COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]
GRID = (225, 225, 225)


def nice_ticks(vmax: float, target: int = 5) -> list[float]:
    """0 and round steps (1, 2 or 5 times a power of ten) up to the first one at or above ``vmax``."""
    if not vmax > 0 or not math.isfinite(vmax):
        return [0.0, 1.0]
    raw = vmax / target
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    count = math.ceil(vmax / step - 1e-9)
    return [i * step for i in range(count + 1)]


def _label(value: float) -> str:
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.2g}"


def plot(result: BenchmarkResult, path: str | Path) -> Path:
    """Write the PNG: p50 latency and throughput against batch size, one line per artifact."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=13)
    artifacts = list(dict.fromkeys(r.artifact for r in result.rows))
    batches = sorted({r.batch for r in result.rows})
    legend_h = 22 * len(artifacts) + 10
    width, height = 1100, 480 + legend_h
    left, right, top, bottom = 90, 30, 40 + legend_h, 60
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    panels = [("p50 latency (ms)", lambda r: r.stats.p50), ("throughput (images/s)", lambda r: r.throughput)]
    gap = left + 20
    panel_w = (width - left - right - gap) // 2
    for p, (title, value) in enumerate(panels):
        x0 = left + p * (panel_w + gap)
        y0, x1, y1 = top, x0 + panel_w, height - bottom
        ticks = nice_ticks(max(value(r) for r in result.rows))
        vmax = ticks[-1]

        def px(i: int, v: float, x0=x0, x1=x1, y0=y0, y1=y1, vmax=vmax) -> tuple[float, float]:
            fx = 0.5 if len(batches) == 1 else i / (len(batches) - 1)
            return x0 + 20 + fx * (x1 - x0 - 40), y1 - (v / vmax) * (y1 - y0)

        for t in ticks:  # horizontal gridlines with y tick labels
            _, ty = px(0, t)
            draw.line([(x0, ty), (x1, ty)], fill=GRID)
            text = _label(t)
            draw.text((x0 - 6 - draw.textlength(text, font=font), ty - 7), text, fill="black", font=font)
        for i, b in enumerate(batches):  # vertical gridlines with x tick labels
            bx, _ = px(i, 0)
            draw.line([(bx, y0), (bx, y1)], fill=GRID)
            text = str(b)
            draw.text((bx - draw.textlength(text, font=font) / 2, y1 + 5), text, fill="black", font=font)
        draw.rectangle([x0, y0, x1, y1], outline="black")
        xlabel = "batch size"
        draw.text(((x0 + x1 - draw.textlength(xlabel, font=font)) / 2, y1 + 25), xlabel, fill="black", font=font)
        _vertical_text(img, title, font, (x0 - 80, (y0 + y1) / 2))
        draw.text((x0, y0 - 20), title, fill="black", font=font)
        for a, name in enumerate(artifacts):
            pts = [px(batches.index(r.batch), value(r)) for r in result.rows if r.artifact == name]
            color = COLORS[a % len(COLORS)]
            if len(pts) > 1:
                draw.line(pts, fill=color, width=2)
            for x, y in pts:
                draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=color)
    for a, name in enumerate(artifacts):  # legend: a line sample and the artifact's name
        y = 12 + 22 * a
        color = COLORS[a % len(COLORS)]
        draw.line([(left, y + 7), (left + 30, y + 7)], fill=color, width=3)
        draw.text((left + 38, y), name[:120], fill="black", font=font)
    path = Path(path)
    img.save(path, format="PNG")
    return path


def _vertical_text(img, text: str, font, center: tuple[float, float]) -> None:
    """Paste ``text`` rotated 90 degrees (reading bottom to top) centred on ``center``: the y-axis title."""
    from PIL import Image, ImageDraw

    probe = ImageDraw.Draw(img)
    w = int(probe.textlength(text, font=font)) + 4
    label = Image.new("RGB", (w, 18), "white")
    ImageDraw.Draw(label).text((2, 1), text, fill="black", font=font)
    label = label.rotate(90, expand=True)
    img.paste(label, (int(center[0]), int(center[1] - label.height / 2)))
