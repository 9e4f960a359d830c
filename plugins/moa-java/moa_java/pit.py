"""PIT (pitest.org), from Maven Central, with its JUnit 5 plugin: which bytecode mutants the
tests kill, as its XML report says.

PIT is installed by Maven into moa's local repository (a generated POM naming PIT's command
line and the JUnit 5 plugin; `dependency:build-classpath` writes the jars PIT runs from).
The JUnit 5 plugin's own dependencies are left out: the tree's console launcher jar bundles
the JUnit Platform launcher and engines, one version of each, as the evaluator loads them.
"""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from moa.languages.tools import ToolError, install_once
from moa_java.maven import repository

PIT_VERSION = "1.30.2"
JUNIT5_PLUGIN_VERSION = "1.2.3"
# PIT's defaults (its DEFAULTS group): the operators mapped onto source edits in edits.py.
MUTATORS = (
    "CONDITIONALS_BOUNDARY",
    "INCREMENTS",
    "INVERT_NEGS",
    "MATH",
    "NEGATE_CONDITIONALS",
    "VOID_METHOD_CALLS",
    "EMPTY_RETURNS",
    "FALSE_RETURNS",
    "TRUE_RETURNS",
    "NULL_RETURNS",
    "PRIMITIVE_RETURNS",
)
_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.moa</groupId><artifactId>pitest-tool</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.pitest</groupId><artifactId>pitest-command-line</artifactId>
      <version>{pit}</version></dependency>
    <dependency><groupId>org.pitest</groupId><artifactId>pitest-junit5-plugin</artifactId>
      <version>{plugin}</version>
      <exclusions><exclusion><groupId>*</groupId><artifactId>*</artifactId></exclusion></exclusions>
    </dependency>
  </dependencies>
</project>
"""
CLASSPATH_FILE = "classpath.txt"


def tool_classpath() -> list[str]:
    """PIT's jars (installed into the local Maven repository on first use; needs the network)."""

    def install(folder: Path) -> None:
        (folder / "pom.xml").write_text(_POM.format(pit=PIT_VERSION, plugin=JUNIT5_PLUGIN_VERSION))
        cmd = ["mvn", "-B", "-q", f"-Dmaven.repo.local={repository()}", "dependency:build-classpath"]
        proc = subprocess.run(
            [*cmd, f"-Dmdep.outputFile={folder / CLASSPATH_FILE}"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if proc.returncode != 0:
            raise ToolError(
                f"installing PIT {PIT_VERSION} with Maven failed:\n{(proc.stdout + proc.stderr)[-1500:]}"
            )

    folder = install_once(f"pitest-{PIT_VERSION}", lambda d: (d / CLASSPATH_FILE).is_file(), install)
    return (folder / CLASSPATH_FILE).read_text().strip().split(":")


@dataclass(frozen=True)
class PitMutant:
    """One `<mutation>` of PIT's mutations.xml."""

    cls: str  # the mutated class, binary name (org.x.Outer$Inner)
    source_file: str  # Outer.java
    method: str
    line: int
    mutator: str  # PIT's short name: NEGATE_CONDITIONALS
    description: str  # "negated conditional", "replaced int return with 0 for ..."
    status: str  # KILLED SURVIVED NO_COVERAGE TIMED_OUT MEMORY_ERROR RUN_ERROR NON_VIABLE
    killing_test: str = ""  # Class#method, when PIT names one

    @property
    def path(self) -> str:
        """The source file, relative to the tree."""
        package = self.cls.rpartition(".")[0]
        return (
            "/".join(["src/main/java", *package.split("."), self.source_file])
            if package
            else f"src/main/java/{self.source_file}"
        )

    @property
    def function(self) -> str:
        """`Class.method` (nested classes dotted, a constructor by its class's name), as
        functions.py names the methods of the source."""
        owner = self.cls.rpartition(".")[2].replace("$", ".")
        return f"{owner}.{owner.rpartition('.')[2] if self.method == '<init>' else self.method}"


def short_mutator(name: str) -> str:
    """PIT's mutator class name -> its short name (`...NegateConditionalsMutator` -> NEGATE_CONDITIONALS)."""
    simple = name.rpartition(".")[2].removesuffix("Mutator")
    known = {
        "ConditionalsBoundary": "CONDITIONALS_BOUNDARY",
        "Increments": "INCREMENTS",
        "InvertNegs": "INVERT_NEGS",
        "Math": "MATH",
        "NegateConditionals": "NEGATE_CONDITIONALS",
        "VoidMethodCall": "VOID_METHOD_CALLS",
        "EmptyObjectReturnVals": "EMPTY_RETURNS",
        "BooleanFalseReturnVals": "FALSE_RETURNS",
        "BooleanTrueReturnVals": "TRUE_RETURNS",
        "NullReturnVals": "NULL_RETURNS",
        "PrimitiveReturns": "PRIMITIVE_RETURNS",
    }
    return known.get(simple, simple)


def killing_test(text: str) -> str:
    """PIT's killingTest (`org.x.FooTest.[engine:junit-jupiter]/[class:org.x.FooTest]/[method:bar()]`)
    -> `org.x.FooTest#bar` (parameter types kept when there are some)."""
    cls = text.split(".[engine:", 1)[0] if ".[engine:" in text else text.rpartition(".")[0]
    method = next((seg[len("[method:") : -1] for seg in text.split("/") if seg.startswith("[method:")), "")
    if not method:
        method = next(
            (seg.split(":", 1)[1][:-1] for seg in text.split("/") if seg.startswith("[test-template:")), ""
        )
    if not cls or not method:
        return text
    # Parameter types are dropped: PIT writes them URL-encoded, and verification names the
    # failing tests as the launcher reports them anyway.
    return f"{cls}#{method.split('(')[0]}"


def parse_report(text: str) -> list[PitMutant]:
    """PIT's mutations.xml -> mutants, in file and line order."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ToolError(f"PIT's mutations.xml does not parse: {exc}") from exc
    out = []
    for m in root.iter("mutation"):

        def field(tag: str, m: ET.Element = m) -> str:
            return (m.findtext(tag) or "").strip()

        out.append(
            PitMutant(
                cls=field("mutatedClass"),
                source_file=field("sourceFile"),
                method=field("mutatedMethod"),
                line=int(field("lineNumber") or 0),
                mutator=short_mutator(field("mutator")),
                description=field("description"),
                status=m.get("status", ""),
                killing_test=killing_test(field("killingTest")) if field("killingTest") else "",
            )
        )
    return sorted(out, key=lambda p: (p.path, p.line, p.mutator, p.description))
