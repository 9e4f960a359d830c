"""What a stage's report must hold: its plots as real PNG images, linked from its report.md."""

from __future__ import annotations

import struct
from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MIN_BYTES = 4000  # an empty 700x400 canvas compresses to about 2 kB; drawn bars and axes weigh more


def assert_plots(reports: Path, names: list[str]) -> None:
    report = (reports / "report.md").read_text()
    for name in names:
        png = reports / "plots" / f"{name}.png"
        data = png.read_bytes()
        assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR", f"{png}: not a PNG"
        width, height = struct.unpack(">II", data[16:24])
        assert width >= 300 and height >= 200 and len(data) > MIN_BYTES, (
            f"{png}: {width}x{height}, {len(data)} B"
        )
        assert f"](plots/{name}.png)" in report, f"{reports / 'report.md'} does not show {name}.png"
