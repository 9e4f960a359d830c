"""Where the typescript toolchain keeps downloads (npm's tarball cache) and how it runs offline.

Npm's tarball cache; offline: npm install from that cache only.
"""

from pathlib import Path

from moa.languages.base import OfflineCache


def _env(cache: Path) -> dict[str, str]:
    return {"npm_config_cache": str(cache / "npm")}


OFFLINE_CACHE = OfflineCache(
    env=_env, offline={"npm_config_offline": "true", "npm_config_audit": "false", "npm_config_fund": "false"}
)
