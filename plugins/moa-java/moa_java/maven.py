"""Maven Central sources: `maven:GROUP:ARTIFACT@VERSION` as a buildable tree.

Maven Central publishes no source tree, but most Apache Commons (and many other) artifacts
publish a `-sources.jar` and a `-test-sources.jar` next to the POM; together they are the
tree. Each file is verified against its published `.sha1` before it is unpacked (moa's own
`download`, which re-verifies a cached archive on every use).

The tree:  pom.xml, src/main/java (sources jar), src/test/java (test-sources jar), their
non-Java files moved to src/main/resources and src/test/resources (the Maven layout), and
`.moa-java.json`: the dependency classpath (test scope included) resolved by Maven into a
local repository under ~/.cache/moa, the JUnit Platform console launcher matching the
artifact's JUnit version, and the POM's source encoding. The network is needed only here:
evaluation runs offline from that repository.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from moa.api.records import SourceRef
from moa.languages.sources import SourceError, download, http_get, unpack
from moa.languages.tools import cache_dir

CENTRAL = "https://repo1.maven.org/maven2"
LAYOUT = ".moa-java.json"
# The parts of a tree: (classifier suffix of the published file, where it is unpacked).
_PARTS = (("-sources.jar", "src/main/java"), ("-test-sources.jar", "src/test/java"))
# The launcher bundles the JUnit Platform, Jupiter and Vintage engines and opentest4j: the
# artifact's own copies of those are left off the classpath so one version of each is loaded.
_BUNDLED = re.compile(r"/(org/junit/(platform|jupiter|vintage)|org/opentest4j|org/apiguardian)/")
_JUPITER = re.compile(r"/junit-jupiter-api-5\.(\d+\.\d+)\.jar$")
DEFAULT_PLATFORM = "1.10.2"


def repository() -> Path:
    """The local Maven repository every Java tree's classpath points into."""
    return cache_dir() / "maven" / "repository"


def coordinates(ref: SourceRef) -> tuple[str, str]:
    group, sep, artifact = ref.name.partition(":")
    if not sep or not group or not artifact or ":" in artifact:
        raise SourceError(f"{ref}: a maven source is maven:GROUP:ARTIFACT@VERSION")
    return group, artifact


def fetch_maven(ref: SourceRef, dest: Path, archives: Path) -> dict[str, str]:
    group, artifact = coordinates(ref)
    base = f"{CENTRAL}/{group.replace('.', '/')}/{artifact}/{ref.version}/{artifact}-{ref.version}"
    verified = {}
    for suffix, folder in (*_PARTS, (".pom", "")):
        url = base + suffix
        sha1 = http_get(url + ".sha1", ref).text.split()[0].strip()
        path = download(ref, url, archives, f"{artifact}-{ref.version}{suffix}", "sha1", sha1, "hex")
        verified[f"{artifact}-{ref.version}{suffix}"] = sha1
        if folder:
            (dest / folder).mkdir(parents=True)
            unpack(ref, path, dest / folder)
            shutil.rmtree(dest / folder / "META-INF", ignore_errors=True)
            _split_resources(dest / folder)
        else:
            shutil.copyfile(path, dest / "pom.xml")
    (dest / LAYOUT).write_text(json.dumps(resolve(ref, dest), indent=1))
    return {"sha1": json.dumps(verified), "url": base}


def _split_resources(java: Path) -> None:
    """Move what is not Java source to the Maven layout's resources folder (tests open
    `src/test/resources/...` by path)."""
    resources = java.parent / "resources"
    for path in [p for p in java.rglob("*") if p.is_file() and p.suffix != ".java"]:
        target = resources / path.relative_to(java)
        target.parent.mkdir(parents=True, exist_ok=True)
        path.rename(target)


def _mvn(ref: SourceRef, dest: Path, *goal: str) -> str:
    if not shutil.which("mvn"):
        raise SourceError(f"{ref}: Maven (`mvn`) is needed to resolve a Java artifact's dependencies")
    proc = subprocess.run(
        ["mvn", "-B", "-q", f"-Dmaven.repo.local={repository()}", *goal],
        cwd=dest,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        raise SourceError(f"{ref}: mvn {goal[0]} failed:\n{(proc.stdout + proc.stderr).strip()[-1500:]}")
    return proc.stdout


def resolve(ref: SourceRef, dest: Path) -> dict[str, object]:
    """The artifact's dependencies (test scope included) and a matching console launcher,
    downloaded into `repository()`: the classpath an offline build needs."""
    out = dest / "target" / "classpath.txt"
    _mvn(ref, dest, "dependency:build-classpath", "-Dmdep.includeScope=test", f"-Dmdep.outputFile={out}")
    jars = [j for j in out.read_text().strip().split(":") if j]
    shutil.rmtree(dest / "target")
    jupiter = next((m[1] for j in jars if (m := _JUPITER.search(j))), None)
    platform = f"1.{jupiter}" if jupiter else DEFAULT_PLATFORM
    launcher = f"org.junit.platform:junit-platform-console-standalone:{platform}"
    _mvn(ref, dest, "dependency:get", f"-Dartifact={launcher}", "-Dtransitive=false")
    jar = repository() / "org/junit/platform/junit-platform-console-standalone" / platform
    # Apache Commons' parent declares ISO-8859-1 sources: javac must read them as the build does.
    shown = _mvn(ref, dest, "help:evaluate", "-Dexpression=project.build.sourceEncoding", "-DforceStdout")
    encoding = re.sub(r"\x1b\[[0-9;]*m", "", shown).strip()  # Maven colours even a forced stdout
    return {
        "classpath": [j for j in jars if not _BUNDLED.search(j)],
        "launcher": str(jar / f"junit-platform-console-standalone-{platform}.jar"),
        "encoding": encoding if encoding and "null object" not in encoding else "UTF-8",
    }
