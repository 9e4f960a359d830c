"""Which language a prompt is about: the `moa-auto` route, and `moa detect`.

A cascade, strongest evidence first, each step deciding only with a clear margin:

1. `metadata`: the request names its language (`metadata: {"language": "rust"}`);
2. `files`: fenced-code info strings (```rust), manifest names (`Cargo.toml`) and file paths
   with a plugin's extension (`src/lib.rs`);
3. `keywords`: the plugins' code markers and stack-trace / toolchain patterns.

Nothing here names a language: every marker comes from the plugin (`LanguagePlugin.extensions`,
`.markers` and the optional `.routing` hook), so installing a plugin makes it routable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import PurePosixPath

from moa.languages.base import LanguagePlugin
from moa.languages.registry import plugins

# A step decides when its best language holds this share of the step's evidence...
MIN_SHARE = 0.6
# ...and leads the runner-up by this much (in the step's own units: see the weights below).
MIN_LEAD = {"files": 1.0, "keywords": 1.5}
# Evidence weights of the `files` step.
FENCE, MANIFEST, PATH = 3.0, 3.0, 1.0

_FENCE_RE = re.compile(r"^\s*(?:```|~~~)\s*([\w+#.-]+)", re.MULTILINE)
# Path-like words: `src/lib.rs`, `main.go:12`, `"app/index.ts"`.
_PATH_RE = re.compile(r"[\w./@-]*\w\.[A-Za-z]{1,4}\b")
_NAME_RE = re.compile(r"[\w.-]+")


@dataclass(frozen=True)
class Detection:
    language: str | None  # None: no step was sure (the router falls back to the default adapter)
    confidence: float  # the deciding step's share of evidence for `language` (0 when none)
    reason: str  # metadata | files | keywords | ambiguous | no-signal
    detail: str  # what decided, for `moa detect` and the x-moa-route-reason header

    def as_dict(self) -> dict[str, object]:
        return {
            "language": self.language,
            "confidence": round(self.confidence, 3),
            "reason": self.reason,
            "detail": self.detail,
        }


def detect(text: str, metadata: Mapping[str, object] | None = None) -> Detection:
    known = plugins()
    asked = (metadata or {}).get("language")
    if isinstance(asked, str) and asked:
        if asked in known:
            return Detection(asked, 1.0, "metadata", f"metadata.language={asked}")
        raise ValueError(f"metadata.language {asked!r} is not an installed language ({', '.join(known)})")
    unsure: list[str] = []
    for step, scorer in (("files", _file_scores), ("keywords", _keyword_scores)):
        scores, evidence = scorer(text, known)
        decided = _decide(step, scores)
        if decided is not None:
            language, share = decided
            return Detection(language, share, step, "; ".join(evidence[language][:4]))
        if any(scores.values()):
            unsure.append(f"{step}: " + ", ".join(f"{k}={v:g}" for k, v in _ranked(scores) if v))
    if unsure:
        return Detection(None, 0.0, "ambiguous", "; ".join(unsure))
    return Detection(None, 0.0, "no-signal", "no language markers found")


def _decide(step: str, scores: dict[str, float]) -> tuple[str, float] | None:
    ranked = _ranked(scores)
    total = sum(scores.values())
    if not ranked or total <= 0:
        return None
    (best, top), runner = ranked[0], ranked[1][1] if len(ranked) > 1 else 0.0
    share = top / total
    if share >= MIN_SHARE and top - runner >= MIN_LEAD[step]:
        return best, share
    return None


def _ranked(scores: dict[str, float]) -> list[tuple[str, float]]:
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


Evidence = dict[str, list[str]]


def _file_scores(text: str, known: Mapping[str, LanguagePlugin]) -> tuple[dict[str, float], Evidence]:
    scores = {name: 0.0 for name in known}
    evidence: Evidence = {name: [] for name in known}
    fences, manifests, extensions = _file_tables(tuple(known))

    def add(language: str, weight: float, why: str) -> None:
        scores[language] += weight
        if why not in evidence[language]:
            evidence[language].append(why)

    for tag in _FENCE_RE.findall(text):
        if tag.lower() in fences:
            add(fences[tag.lower()], FENCE, f"```{tag}")
    for word in _NAME_RE.findall(text):
        base = word.rsplit("/", 1)[-1]
        if base in manifests:
            add(manifests[base], MANIFEST, base)
    for word in _PATH_RE.findall(text):
        suffix = PurePosixPath(word).suffix
        if suffix in extensions and PurePosixPath(word).stem:
            add(extensions[suffix], PATH, word)
    return scores, evidence


@cache
def _file_tables(names: tuple[str, ...]) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """(fence tag, manifest name, extension) -> language, from the installed plugins."""
    fences: dict[str, str] = {}
    manifests: dict[str, str] = {}
    extensions: dict[str, str] = {}
    for name, plugin in plugins().items():
        fences[name] = name
        for ext in plugin.extensions:
            extensions[ext] = name
        if plugin.routing is not None:
            fences.update({tag.lower(): name for tag in plugin.routing.fences})
            manifests.update({m: name for m in plugin.routing.manifests})
    return fences, manifests, extensions


def _keyword_scores(text: str, known: Mapping[str, LanguagePlugin]) -> tuple[dict[str, float], Evidence]:
    scores: dict[str, float] = {}
    evidence: Evidence = {}
    for name, plugin in known.items():
        patterns = dict(plugin.markers)
        if plugin.routing is not None:
            patterns.update(plugin.routing.patterns)
        # A pattern counts up to three times: repeated evidence helps, but one idiom
        # written twenty times must not outvote everything else.
        hits = [(p, w * min(3, len(_compiled(p).findall(text)))) for p, w in patterns.items()]
        hits = [(p, w) for p, w in hits if w]
        scores[name] = float(sum(w for _, w in hits))
        evidence[name] = [f"/{p}/" for p, _ in sorted(hits, key=lambda h: -h[1])]
    return scores, evidence


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.MULTILINE)
