"""Accuracy of the `moa-auto` language detector on the project's labelled set.

    .venv/bin/python bench/detect.py [--data bench/data/detect.jsonl] [--show-misses]

The set (208 prompts, 52 per language) mixes four kinds: bare code, chat questions with a
snippet (fenced with or without an info string, or not at all), file listings, and stack
traces / compiler errors. A prompt the detector leaves undecided counts as a miss (the
router would send it to the registry's default adapter). Also prints the per-prompt time.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

from moa.serving.detect import detect

DATA = Path(__file__).parent / "data" / "detect.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--show-misses", action="store_true")
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.data.read_text().splitlines() if line.strip()]
    total: Counter[str] = Counter()
    right: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    misses = []
    started = time.perf_counter()
    for row in rows:
        got = detect(row["prompt"])
        reasons[got.reason] += 1
        for key in (row["language"], f"kind:{row['kind']}", "overall"):
            total[key] += 1
            right[key] += got.language == row["language"]
        if got.language != row["language"]:
            misses.append((row, got))
    per_prompt_ms = (time.perf_counter() - started) * 1000 / len(rows)
    print(f"{'group':<16} {'right':>5} / {'all':<4} accuracy")
    for key in sorted(total, key=lambda k: (k == "overall", k.startswith("kind:"), k)):
        print(f"{key:<16} {right[key]:>5} / {total[key]:<4} {right[key] / total[key]:.1%}")
    print(f"decided by: {dict(reasons)}; {per_prompt_ms:.2f} ms per prompt")
    if args.show_misses:
        for row, got in misses:
            print(f"--- want {row['language']} ({row['kind']}), got {got.as_dict()}\n{row['prompt'][:300]}")


if __name__ == "__main__":
    main()
