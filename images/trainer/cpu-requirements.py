"""cpu-requirements.py REPORT: the pins of a `pip install --report` resolve, minus CUDA runtime wheels.

The CPU trainer image installs these with --no-deps (see images/trainer/Dockerfile for why);
moa itself (the local source) is installed separately.
"""

import json
import re
import sys

# nvidia-* (cuBLAS, cuDNN, NCCL, ...), cuda-* (toolkit, bindings) and triton (GPU kernels).
CUDA_ONLY = re.compile(r"^(nvidia-|cuda-|triton$)")


def main(report_path: str) -> None:
    report = json.load(open(report_path))
    for item in report["install"]:
        meta = item["metadata"]
        name = meta["name"].lower().replace("_", "-")
        if name == "moa" or CUDA_ONLY.match(name):
            continue
        print(f"{meta['name']}=={meta['version']}")


if __name__ == "__main__":
    main(sys.argv[1])
