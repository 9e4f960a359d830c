"""What moa knows about a language comes from its plugin's hooks: failing-test names, where a
function is defined, idioms, the folders to leave alone. Each language's real runner output
and source shapes, checked against its own plugin."""

from __future__ import annotations

import re

import pytest

from moa.agent.executor import failing_tests
from moa.agent.ranking import patch_stats
from moa.harmony.patch import make_patch
from moa.languages import registry

# A real failing line of each language's test runners, and the test name in it.
RUNNER_LINES = {
    "python": ("FAILED tests/test_calc.py::test_sub - assert 3 == 2", "tests/test_calc.py::test_sub"),
    "rust": ("test tests::parses_hex ... FAILED", "tests::parses_hex"),
    "go": ("    --- FAIL: TestParse (0.00s)", "TestParse"),
    "typescript": (
        "  ● dedent › should remove the same number of tabs",
        "dedent › should remove the same number of tabs",
    ),
}
# A definition of `frobnicate` in each language (TypeScript: each form the oracle searches for).
DEFINITIONS = {
    "python": ["def frobnicate(x):"],
    "rust": ["pub fn frobnicate(x: u8) -> u8 {"],
    "go": ["func frobnicate(x int) int {", "func (p *Parser) frobnicate() error {"],
    "typescript": [
        "export function frobnicate(x: number): number {",
        "const frobnicate = (x: number) => x;",
        "  private async frobnicate<T>(x: T) {",
    ],
}
# A line each language's idioms reject, in a file of that language.
IDIOMS = {
    "python": ("m.py", "def f(x):\n"),
    "rust": ("src/lib.rs", "let v = parse(s).unwrap();\n"),
    "go": ("x.go", 'return fmt.Errorf("parse: %v", err)\n'),
    "typescript": ("src/a.ts", "const v: any = read();\n"),
}


@pytest.mark.parametrize("language", sorted(RUNNER_LINES))
def test_failing_test_names_come_from_the_language_plugin(language: str) -> None:
    line, name = RUNNER_LINES[language]
    patterns = registry.get(language).failing_test_patterns
    assert failing_tests(f"running\n{line}\ndone\n", patterns) == (name,)


@pytest.mark.parametrize("language", sorted(DEFINITIONS))
def test_each_plugin_says_where_a_function_is_defined(language: str) -> None:
    plugin = registry.get(language)
    pattern = re.compile(plugin.definition("pkg.module.frobnicate"))
    assert all(pattern.search(line) for line in DEFINITIONS[language])
    assert not pattern.search("frobnicate_all(x)") and not pattern.search("# calls frobnicateX")


@pytest.mark.parametrize("language", sorted(IDIOMS))
def test_idioms_come_from_the_plugin_that_owns_the_file(language: str) -> None:
    path, line = IDIOMS[language]
    stats = patch_stats(make_patch({path: ("", line)}))
    assert stats is not None and len(stats.idiom_violations) == 1
    assert stats.idiom_violations[0].startswith(f"{path}: ")
    assert registry.for_file(path) is registry.get(language)


def test_folders_to_leave_alone_are_the_plugins_own() -> None:
    plugins = registry.plugins().values()
    assert registry.dependency_dirs() == {d for p in plugins for d in p.dependency_dirs}
    assert registry.build_dirs() == {d for p in plugins for d in p.build_dirs}
    assert registry.incremental_dirs() <= registry.build_dirs()
    assert all(lock.split("/")[0] in registry.dependency_dirs() for lock in registry.dependency_locks())
