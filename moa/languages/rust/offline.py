"""Where the rust toolchain keeps downloads (cargo's registry index and .crate files) and how it runs offline.

Cargo's registry index and .crate files; offline: cargo --offline everywhere.
"""

from pathlib import Path

from moa.languages.base import OfflineCache


def _env(cache: Path) -> dict[str, str]:
    return {"CARGO_HOME": str(cache / "cargo")}


OFFLINE_CACHE = OfflineCache(env=_env, ca_env=("CARGO_HTTP_CAINFO",), offline={"CARGO_NET_OFFLINE": "true"})
