"""Plugin discovery through a real entry point, `moa languages`, and language detection."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from moa.languages import registry

TINY_PLUGIN = """
from moa.languages.base import LanguagePlugin

plugin = LanguagePlugin(name="tinylang", extensions=(".tiny",), markers={r"^tiny\\s+say\\b": 2})
"""


def install(site: Path, dist: str, module: str, source: str, entry: str) -> None:
    """Install a distribution the way pip leaves it: a module plus a *.dist-info folder with
    METADATA and entry_points.txt. importlib.metadata finds it on sys.path like any other."""
    (site / f"{module}.py").write_text(source)
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[moa.languages]\n{entry}\n")


def moa(site: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "moa.cli", *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_third_party_plugin_is_discovered_with_no_change_to_moa(tmp_path: Path) -> None:
    install(tmp_path, "moa-tinylang", "moa_tinylang", TINY_PLUGIN, "tinylang = moa_tinylang:plugin")
    listed = moa(tmp_path, "languages")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("tinylang "))
    assert lines[at].split()[1:] == [".tiny"]
    assert lines[at + 1].split() == [
        "detect:yes",
        "route:absent",
        "mutate:absent",
        "evaluate:absent",
        "sources:absent",
    ]
    assert lines[at + 2].strip() == "from moa_tinylang:plugin from moa-tinylang"
    for builtin in ("go", "python", "rust", "typescript"):
        assert any(line.startswith(builtin + " ") for line in lines), builtin

    snippet = tmp_path / "hello.tiny"
    snippet.write_text("anything\n")
    assert moa(tmp_path, "languages", "detect", str(snippet)).stdout == "tinylang\t1.00\n"
    by_content = moa(tmp_path, "languages", "detect", "-", stdin="tiny say hello\n")
    assert by_content.stdout == "tinylang\t1.00\n"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("plugin = 42\n", "is not a moa LanguagePlugin but int"),
        ("raise ImportError('needs libtiny')\n", "failed to import: needs libtiny"),
        (TINY_PLUGIN.replace('"tinylang"', '"rust"'), "two plugins are named 'rust'"),
    ],
)
def test_a_broken_plugin_is_named_in_one_clear_error(tmp_path: Path, source: str, message: str) -> None:
    install(tmp_path, "moa-broken", "moa_broken", source, "broken = moa_broken:plugin")
    result = moa(tmp_path, "languages")
    assert result.returncode == 1
    assert result.stderr.startswith("moa: error: ") and message in result.stderr and "broken" in result.stderr


SNIPPETS = {
    "rust": """
        use std::collections::HashMap;

        pub fn word_count(text: &str) -> HashMap<String, usize> {
            let mut counts = HashMap::new();
            for word in text.split_whitespace() {
                *counts.entry(word.to_lowercase()).or_insert(0) += 1;
            }
            counts
        }
    """,
    "python": """
        import re
        from collections import Counter


        class Tokenizer:
            def __init__(self, pattern: str) -> None:
                self.pattern = re.compile(pattern)

            def count(self, text: str) -> Counter[str]:
                return Counter(self.pattern.findall(text))
    """,
    "typescript": """
        import { readFileSync } from "fs";

        export interface Options {
          caseSensitive: boolean;
        }

        export function wordCount(text: string, opts: Options): Map<string, number> {
          const counts = new Map<string, number>();
          text.split(/\\s+/).forEach((w) => counts.set(w, (counts.get(w) ?? 0) + 1));
          return counts;
        }
    """,
    "go": """
        package words

        import (
        \t"strings"
        )

        func WordCount(text string) (map[string]int, error) {
        \tcounts := make(map[string]int)
        \tfor _, w := range strings.Fields(text) {
        \t\tcounts[strings.ToLower(w)]++
        \t}
        \treturn counts, nil
        }
    """,
}
SHORT = {
    "rust": "fn main() {\n    let mut total = 0;\n}\n",
    "python": "def add(a, b):\n    return a + b\n",
    "typescript": "const add = (a: number, b: number): number => a + b;\n",
    "go": "func add(a int, b int) int {\n\tsum := a + b\n\treturn sum\n}\n",
}


@pytest.mark.parametrize("language", sorted(SNIPPETS))
def test_detection_of_each_language(language: str) -> None:
    for snippet in (textwrap.dedent(SNIPPETS[language]), SHORT[language]):
        ranked = registry.scores(snippet)
        assert ranked[0][0] == language, ranked
        assert ranked[0][1] > ranked[1][1], ranked  # a clear winner, not a tie broken by name
    extension = registry.get(language).extensions[0]
    assert registry.detect("", filename=f"x{extension}") == (language, 1.0)


def test_nothing_recognisable_is_reported_not_guessed(tmp_path: Path) -> None:
    assert registry.detect("just some prose, nothing more.") is None
    prose = tmp_path / "notes.txt"
    prose.write_text("just some prose\n")
    result = moa(tmp_path, "languages", "detect", str(prose))
    assert result.returncode == 1 and "no installed plugin recognises" in result.stderr


REGISTRY_PLUGIN = """
from moa.languages.base import LanguagePlugin

def fetch_tiny(ref, dest, archives):
    (dest / "hello.tiny").write_text(f"tiny say {ref.name} {ref.version}\\n")
    return {"made": "locally"}

plugin = LanguagePlugin(name="tinylang", extensions=(".tiny",), fetchers={"tiny": fetch_tiny})
"""


def test_a_plugin_adds_a_source_registry(tmp_path: Path) -> None:
    """`REGISTRY:` prefixes are open: moa's fetch dispatches an installed plugin's prefix to it
    (and still names an unknown one)."""
    install(tmp_path, "moa-tinylang", "moa_tinylang", REGISTRY_PLUGIN, "tinylang = moa_tinylang:plugin")
    script = (
        "import sys; from pathlib import Path; from moa.languages import sources\n"
        "tree = sources.fetch('tiny:hello@1.0', root=Path(sys.argv[1]))\n"
        "print((tree / 'hello.tiny').read_text(), end='')\n"
        "try: sources.fetch('nosuch:x@1', root=Path(sys.argv[1]))\n"
        "except sources.SourceError as exc: print(exc)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "cache")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.splitlines()
    assert first == "tiny say hello 1.0"
    assert "unknown source registry 'nosuch'" in second and "tiny" in second.split("known:")[1]
