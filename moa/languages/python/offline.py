"""Where the python toolchain keeps downloads (pip's wheel cache) and how it runs offline.

Pip's wheel cache; offline: no package index at all (the target venv was built by fetch).
"""

from pathlib import Path

from moa.languages.base import OfflineCache


def _env(cache: Path) -> dict[str, str]:
    return {"PIP_CACHE_DIR": str(cache / "pip")}


OFFLINE_CACHE = OfflineCache(
    env=_env, ca_env=("PIP_CERT", "REQUESTS_CA_BUNDLE"), offline={"PIP_NO_INDEX": "1"}
)
