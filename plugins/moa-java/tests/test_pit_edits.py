"""PIT's report -> source edits, on a small Java file: a mutant becomes a source edit only when
its line holds exactly one token its mutator can have changed; the rest is dropped by reason."""

from __future__ import annotations

from moa_java import edits
from moa_java.functions import functions
from moa_java.pit import killing_test, parse_report

JAVA = """package org.example;

import java.util.List;

public final class Range {
    private int hits;

    public boolean contains(int x) {
        return x >= lo && x < hi;
    }

    public boolean below(int x) {
        return x < lo;
    }

    public int width() {
        return hi - lo;
    }

    public List<String> names(List<String> in) {
        if (in.size() > 2) {
            log("many: " + in.size());
        }
        hits++;
        reset();
        return in;
    }

    public String label() {
        return "a < b";
    }

    public boolean empty() {
        return isEmpty() || lo == hi;
    }
}
"""

_MUTATION = (
    "<mutation detected='{detected}' status='{status}' numberOfTestsRun='2'><sourceFile>Range.java</sourceFile>"
    "<mutatedClass>org.example.Range</mutatedClass><mutatedMethod>{method}</mutatedMethod>"
    "<methodDescription>(I)Z</methodDescription><lineNumber>{line}</lineNumber>"
    "<mutator>org.pitest.mutationtest.engine.gregor.mutators.{mutator}</mutator>"
    "<indexes><index>5</index></indexes><blocks><block>1</block></blocks>"
    "<killingTest>{killer}</killingTest><description>{description}</description></mutation>"
)
KILLER = "org.example.RangeTest.[engine:junit-jupiter]/[class:org.example.RangeTest]/[method:below()]"


def report(*rows: tuple[str, int, str, str, str]) -> str:
    body = "".join(
        _MUTATION.format(
            detected=str(status == "KILLED").lower(),
            status=status,
            method=method,
            line=line,
            mutator=mutator,
            description=description,
            killer=KILLER if status == "KILLED" else "",
        )
        for method, line, mutator, description, status in rows
    )
    return f"<?xml version='1.0' encoding='UTF-8'?>\n<mutations partial='true'>{body}</mutations>\n"


def outcome(method: str, line: int, mutator: str, description: str, same_line: int = 1) -> edits.Edit | str:
    (mutant,) = parse_report(report((method, line, mutator, description, "KILLED")))
    return edits.edit(mutant, JAVA, same_line)


def test_report_fields_and_killing_test() -> None:
    mutants = parse_report(
        report(
            ("below", 13, "ConditionalsBoundaryMutator", "changed conditional boundary", "KILLED"),
            ("width", 17, "MathMutator", "Replaced integer subtraction with addition", "SURVIVED"),
        )
    )
    assert [(m.mutator, m.status, m.line) for m in mutants] == [
        ("CONDITIONALS_BOUNDARY", "KILLED", 13),
        ("MATH", "SURVIVED", 17),
    ]
    first = mutants[0]
    assert first.path == "src/main/java/org/example/Range.java"
    assert first.function == "Range.below"
    assert first.killing_test == "org.example.RangeTest#below"
    assert mutants[1].killing_test == ""
    parameterised = "org.x.T.[engine:junit-jupiter]/[class:org.x.T]/[test-template:t(%5BLjava.lang.String;)]/[test-template-invocation:#1]"
    assert killing_test(parameterised) == "org.x.T#t"


def test_one_unambiguous_operator_is_swapped_as_pit_swaps_it() -> None:
    boundary = outcome("below", 13, "ConditionalsBoundaryMutator", "changed conditional boundary")
    assert isinstance(boundary, edits.Edit)
    assert boundary.buggy == "        return x <= lo;\n"
    assert boundary.operator == "CONDITIONALS_BOUNDARY: < -> <="
    negated = outcome("below", 13, "NegateConditionalsMutator", "negated conditional")
    assert isinstance(negated, edits.Edit) and negated.buggy == "        return x >= lo;\n"
    math = outcome("width", 17, "MathMutator", "Replaced integer subtraction with addition")
    assert isinstance(math, edits.Edit) and math.buggy == "        return hi + lo;\n"
    field = outcome("names", 24, "MathMutator", "Replaced integer addition with subtraction")
    assert isinstance(field, edits.Edit) and field.buggy == "        hits--;\n"
    # The whole file changes only at that line.
    changed = edits.apply(JAVA, boundary)
    assert [a for a, b in zip(JAVA.splitlines(), changed.splitlines(), strict=True) if a != b] == [
        "        return x < lo;"
    ]


def test_return_values_and_removed_calls() -> None:
    true = outcome("below", 13, "returns.BooleanTrueReturnValsMutator", "replaced boolean return with true")
    assert isinstance(true, edits.Edit) and true.buggy == "        return true;\n"
    zero = outcome(
        "width",
        17,
        "returns.PrimitiveReturnsMutator",
        "replaced int return with 0 for org/example/Range::width",
    )
    assert isinstance(zero, edits.Edit) and zero.buggy == "        return 0;\n"
    empty = outcome(
        "label",
        30,
        "returns.EmptyObjectReturnValsMutator",
        'replaced return value with "" for org/example/Range::label',
    )
    assert isinstance(empty, edits.Edit) and empty.buggy == '        return "";\n'
    assert empty.operator == 'EMPTY_RETURNS: return "a < b" -> return ""'
    null = outcome(
        "names",
        26,
        "returns.NullReturnValsMutator",
        "replaced return value with null for org/example/Range::names",
    )
    assert isinstance(null, edits.Edit) and null.buggy == "        return null;\n"
    boundary = outcome("names", 21, "ConditionalsBoundaryMutator", "changed conditional boundary")
    assert isinstance(boundary, edits.Edit) and boundary.buggy == "        if (in.size() >= 2) {\n"
    removed = outcome("names", 22, "VoidMethodCallMutator", "removed call to org/example/Range::log")
    assert removed == "not_a_whole_call_statement"  # its argument holds a call PIT's mutant still makes
    reset = outcome("names", 25, "VoidMethodCallMutator", "removed call to org/example/Range::reset")
    assert isinstance(reset, edits.Edit) and reset.buggy == ""
    assert "        reset();\n" not in edits.apply(
        JAVA, reset
    ) and "hits++;\n        return in;" in edits.apply(JAVA, reset)
    braceless = "class A {\n  void f() {\n    if (x)\n      reset();\n  }\n}\n"
    (mutant,) = parse_report(report(("f", 4, "VoidMethodCallMutator", "removed call to A::reset", "KILLED")))
    assert edits.edit(mutant, braceless, 1) == "call_is_a_braceless_body"


def test_ambiguous_mutants_are_dropped_with_a_reason() -> None:
    # Two comparisons on the line: which one PIT changed cannot be told.
    assert (
        outcome("contains", 9, "ConditionalsBoundaryMutator", "changed conditional boundary")
        == "ambiguous_token"
    )
    # `List<String>`'s brackets are not comparisons, but an unspaced `<` is never trusted.
    assert outcome("names", 20, "NegateConditionalsMutator", "negated conditional") == "ambiguous_token"
    # A `<` inside a string literal is not a token.
    assert outcome("label", 30, "NegateConditionalsMutator", "negated conditional") == "no_token"
    # `isEmpty() || lo == hi` compiles to two conditional jumps: PIT makes two mutants there.
    assert outcome("empty", 34, "NegateConditionalsMutator", "negated conditional", same_line=2) == (
        "several_mutants_on_line"
    )
    assert edits.swap("        n = a + b + c;", "MATH") == "ambiguous_token"
    assert edits.swap("        n = -a;", "MATH") == "ambiguous_token"  # a unary minus is not subtraction
    assert outcome("width", 17, "InvertNegsMutator", "removed negation") == "unmapped_mutator"
    assert (
        outcome("width", 99, "MathMutator", "Replaced integer subtraction with addition")
        == "line_out_of_range"
    )


def test_mask_blanks_literals_and_comments() -> None:
    line = """a = "x < y" + 'c' + b; // c < d"""
    masked = edits.mask(line)
    assert len(masked) == len(line)
    assert "<" not in masked and masked.count("+") == 2


def test_methods_are_named_as_pit_names_them() -> None:
    source = (
        "class Outer {\n"
        "  Outer() { }\n"
        "  static class Builder {\n"
        "    Outer build() {\n"
        "      return new Outer();\n"
        "    }\n"
        "  }\n"
        "  Runnable r = new Runnable() { public void run() { } };\n"
        "}\n"
    )
    spans = {(s.name, s.start, s.end) for s in functions("Outer.java", source)}
    assert spans == {("Outer.Outer", 2, 2), ("Outer.Builder.build", 4, 6)}
    rows = [("build", 5, "returns.NullReturnValsMutator", "replaced return value with null", "KILLED")]
    (mutant,) = parse_report(report(*rows).replace("org.example.Range", "org.example.Outer$Builder"))
    assert mutant.function == "Outer.Builder.build"
    (ctor,) = parse_report(report(("&lt;init&gt;", 2, "VoidMethodCallMutator", "removed call", "KILLED")))
    assert ctor.function == "Range.Range"
