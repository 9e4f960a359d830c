"""Where the go toolchain keeps downloads (the module and build caches) and how it runs offline.

The module and build caches; offline: no module proxy, go.sum checked against the cache.
"""

from pathlib import Path

from moa.languages.base import OfflineCache


def _env(cache: Path) -> dict[str, str]:
    return {"GOMODCACHE": str(cache / "go" / "mod"), "GOCACHE": str(cache / "go" / "build")}


OFFLINE_CACHE = OfflineCache(env=_env, offline={"GOPROXY": "off", "GOSUMDB": "off", "GOFLAGS": "-mod=mod"})
