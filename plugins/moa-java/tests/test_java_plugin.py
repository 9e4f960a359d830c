"""The Java plugin as a third party ships it: installed from its own distribution, found only
through the `moa.languages` entry point, gone when uninstalled."""

from __future__ import annotations

import os
import shutil
import site as sitelib
import subprocess
import sys
from pathlib import Path

import pytest
from moa_java import plugin
from moa_java.maven import coordinates

from moa.api.records import SourceRef
from moa.languages import sources
from moa.languages.sources import SourceError

PLUGIN_DIR = Path(__file__).resolve().parents[1]


def _languages(site: Path, view: Path) -> str:
    """`moa languages` in a Python that sees this environment's packages (through `view`) and
    the ones installed into `site`, and no other copy of moa-java."""
    path = [
        p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and not _provides_java(Path(p))
    ]
    boot = f"import site; site.addsitedir({str(view)!r}); site.addsitedir({str(site)!r}); from moa.cli import main; main()"
    proc = subprocess.run(
        [sys.executable, "-S", "-c", boot, "languages"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(path)},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _provides_java(folder: Path) -> bool:
    return folder == PLUGIN_DIR or any(folder.glob("moa_java*"))


def _view_without_java(view: Path) -> Path:
    """This environment's site-packages as links, minus moa-java (`make install` puts it there)."""
    view.mkdir()
    for folder in map(Path, sitelib.getsitepackages()):
        for entry in folder.iterdir() if folder.is_dir() else ():
            if (
                not entry.name.startswith(("moa_java", "__editable__.moa_java"))
                and not (view / entry.name).exists()
            ):
                (view / entry.name).symlink_to(entry)
    return view


def test_installed_distribution_lists_java_and_uninstalling_removes_it(tmp_path: Path) -> None:
    site, copy = tmp_path / "site", tmp_path / "moa-java"
    shutil.copytree(PLUGIN_DIR, copy, ignore=shutil.ignore_patterns("tests", "__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(site), str(copy)],
        check=True, timeout=300,
    )  # fmt: skip
    view = _view_without_java(tmp_path / "view")
    listed = _languages(site, view)
    assert "java" in listed and "moa_java:plugin from moa-java" in listed
    assert "evaluate:yes" in listed.split("java", 1)[1]
    dist = next(site.glob("moa_java-*.dist-info"))
    shutil.rmtree(dist)
    shutil.rmtree(site / "moa_java")
    assert "java" not in _languages(site, view).split()


def test_markers_detect_java_and_poms() -> None:
    snippet = "package org.example;\n\nimport java.util.List;\n\npublic class Foo {\n  @Override\n}\n"
    assert plugin.detect(snippet) == 1.0
    assert plugin.detect("<project><artifactId>x</artifactId>\n<groupId>g</groupId>", "pom.xml") > 0
    assert plugin.detect("fn main() { let x = 1; }") == 0.0
    assert plugin.detect("", "src/Main.java") == 1.0


def test_idioms_flag_null_returns_and_unmanaged_streams() -> None:
    broken = {i.breaks for i in plugin.idioms for line in (
        "    return null;", "InputStream in = new FileInputStream(f);", "} catch (Exception e) {}",
    ) if i.pattern.search(line)}  # fmt: skip
    assert len(broken) == 3
    assert not any(
        i.pattern.search("try (InputStream in = Files.newInputStream(p)) {") for i in plugin.idioms
    )


def test_failing_test_pattern_names_the_junit_test() -> None:
    tree = "│  ├─ PatternOptionBuilderTest ✔\n│  │  ├─ testExistingFilePattern() ✘ option g not parsed\n"
    assert [m[1] for rx in plugin.failing_test_patterns for m in rx.finditer(tree)] == [
        "testExistingFilePattern()"
    ]


def test_bad_coordinates_and_unknown_registries_are_named() -> None:
    with pytest.raises(SourceError, match="maven:GROUP:ARTIFACT@VERSION"):
        coordinates(SourceRef.parse("maven:commons-cli@1.9.0"))
    with pytest.raises(SourceError, match="unknown source registry 'nosuch'"):
        sources.fetch("nosuch:a@1")


def test_serving_routes_java_prompts_by_the_plugins_markers() -> None:
    """moa's serving detector, unchanged, routes by the installed plugin's `routing` hook."""
    from moa.serving.detect import detect

    trace = (
        'Exception in thread "main" java.lang.NullPointerException\n    at org.example.App.run(App.java:12)\n'
    )
    assert detect(trace).language == "java"
    assert detect("My build fails, here is pom.xml:\n<project></project>").language == "java"
    assert detect("```java\nint x = 1;\n```").language == "java"
