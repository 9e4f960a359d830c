"""A stand-in for `moa <group> <stage> --config FILE`, used only by the local-runner tests.

The real stage commands are exercised end to end in tests/e2e; here we need stages whose
outcome the test chooses (MOA_TEST_FAIL=stage[:times], MOA_TEST_GATE=stage) to test the
orchestration itself. It follows the stage contract: writes metrics.json last, exits 0/3/1.
"""

import os
import sys
from pathlib import Path

from moa.api.gates import check
from moa.api.stages import StageConfig, StageSummary

config = StageConfig.load(sys.argv[sys.argv.index("--config") + 1])
out = config.output_dir
out.mkdir(parents=True, exist_ok=True)
with (Path(os.environ["MOA_TEST_LOG"])).open("a") as log:
    log.write(f"{config.stage} {config.shard or ''}\n")
fail, _, times = os.environ.get("MOA_TEST_FAIL", "").partition(":")
if config.stage == fail:
    counter = out / ".failures"
    n = int(counter.read_text()) if counter.exists() else 0
    if not times or n < int(times):
        counter.write_text(str(n + 1))
        print("boom: simulated crash", flush=True)
        sys.exit(1)
if config.stage == os.environ.get("MOA_TEST_GATE"):
    gate = check(f"{config.stage}.loss", 0.9, "<", 0.5)
    StageSummary(stage=config.stage, status="gate_failed", gates=[gate]).write(out / "metrics.json")
    sys.exit(3)
StageSummary(stage=config.stage, status="succeeded", metrics={"seconds": 0.01}).write(out / "metrics.json")
