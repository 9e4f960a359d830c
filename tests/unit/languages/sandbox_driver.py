"""Runs one command through moa's sandbox and prints the result as JSON (the escape tests run it
as root and, through runuser, as an unprivileged user with the system Python)."""

import dataclasses
import json
import sys
from pathlib import Path

from moa.languages import sandbox

request = json.loads(sys.argv[1])
result = sandbox.run(request["cmd"], Path(request["workdir"]), limits=sandbox.Limits(**request["limits"]))
print(json.dumps(dataclasses.asdict(result)))
