"""requirements.py PYPROJECT EXTRA...: moa's dependencies (core + the extras), one per line.

Why: the images install dependencies from pyproject.toml and constraints.txt alone, before the
moa source is copied in, so a changed source rebuilds one small layer, never torch's.
"""

import sys
import tomllib


def main(path: str, *extras: str) -> None:
    project = tomllib.load(open(path, "rb"))["project"]
    wanted = list(project["dependencies"])
    for extra in extras:
        wanted += project["optional-dependencies"][extra]
    print("\n".join(dict.fromkeys(wanted)))


if __name__ == "__main__":
    main(*sys.argv[1:])
