"""Every transition of the pure planner: launches, fan-out limits, retries with backoff, gates,
suspend, `after`, spec changes mid-run, restarts (no duplicates) and the resulting status."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from moa.api.gates import check
from moa.api.stages import STAGE_NAMES, StageSummary
from moa.api.stages import stage as stage_of
from moa.api.training import AdapterTrainingSpec
from moa.pipeline.planner import Attempt, Observed, plan, workload_name

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SOURCES = ["pypi:attrs@23.2.0", "pypi:six@1.16.0", "pypi:idna@3.7"]


def spec(**overrides: object) -> AdapterTrainingSpec:
    data = {
        "language": "python",
        "data": {"sources": SOURCES, "limits": {"concurrency": 2}},
        "backoffSeconds": 10,
    }
    data.update(overrides)  # type: ignore[arg-type]
    return AdapterTrainingSpec.model_validate(data)


def ok(stage: str, **metrics: float) -> Attempt:
    summary = StageSummary(stage=stage, status="succeeded", metrics=metrics)  # type: ignore[arg-type]
    return Attempt("succeeded", started_at=T0, finished_at=T0 + timedelta(seconds=5), summary=summary)


def done_until(stage: str, s: AdapterTrainingSpec) -> dict[tuple[str, str | None], list[Attempt]]:
    """Attempts in which every stage before `stage` succeeded."""
    out: dict[tuple[str, str | None], list[Attempt]] = {}
    for name in STAGE_NAMES[: STAGE_NAMES.index(stage)]:
        if stage_of(name).fan_out:
            for src in s.data.sources:
                out[(name, src)] = [ok(name, caught=10)]
        else:
            out[(name, None)] = [ok(name)]
    return out


def mutate_of(p):  # type: ignore[no-untyped-def]
    return next(st for st in p.stages if st.name == "mutate")


def cond(p, type_: str):  # type: ignore[no-untyped-def]
    return next(c for c in p.conditions if c.type == type_)


def test_fresh_training_fans_out_fetch_then_mutate_up_to_concurrency() -> None:
    p = plan("py", spec(), Observed(now=T0))
    assert [(launch.stage, launch.shard, launch.attempt) for launch in p.launches] == [
        ("fetch", SOURCES[0], 1),
        ("fetch", SOURCES[1], 1),
    ]
    assert p.phase == "Running" and p.stage == "fetch"
    p = plan("py", spec(), Observed(now=T0, attempts=done_until("mutate", spec())))
    assert [(launch.stage, launch.shard, launch.attempt) for launch in p.launches] == [
        ("mutate", SOURCES[0], 1),
        ("mutate", SOURCES[1], 1),
    ]
    assert p.phase == "Running" and p.stage == "mutate"
    assert cond(p, "Reconciling").status == "True" and cond(p, "Ready").status == "False"


def test_running_shards_count_against_concurrency_and_are_not_relaunched() -> None:
    attempts = done_until("mutate", spec()) | {
        ("mutate", SOURCES[0]): [Attempt("running", started_at=T0)],
        ("mutate", SOURCES[1]): [ok("mutate")],
    }
    p = plan("py", spec(), Observed(now=T0, attempts=attempts))
    assert [(launch.shard, launch.attempt) for launch in p.launches] == [(SOURCES[2], 1)]
    attempts[("mutate", SOURCES[2])] = [Attempt("running", started_at=T0)]
    assert plan("py", spec(), Observed(now=T0, attempts=attempts)).launches == []


def test_next_stage_starts_when_all_shards_succeeded_and_metrics_are_summed() -> None:
    s = spec()
    p = plan("py", s, Observed(now=T0, attempts=done_until("trajectories", s)))
    assert [launch.stage for launch in p.launches] == ["trajectories"]
    mutate = next(st for st in p.stages if st.name == "mutate")
    assert mutate.state == "Succeeded" and mutate.metrics == {"caught": 30.0}


def test_mutation_yield_across_two_sources_is_recomputed_from_counts_and_stays_at_most_one() -> None:
    # Two shards each caught most of their mutants: adding their yields would show 1.7.
    attempts = {
        ("mutate", SOURCES[0]): [ok("mutate", caught=9, total=10, **{"yield": 0.9}, mutants_per_minute=30)],
        ("mutate", SOURCES[1]): [ok("mutate", caught=24, total=30, **{"yield": 0.8}, mutants_per_minute=50)],
    }
    s = spec(data={"sources": SOURCES[:2], "limits": {"concurrency": 2}})
    attempts |= {("fetch", src): [ok("fetch")] for src in SOURCES[:2]}
    mutate = next(
        st for st in plan("py", s, Observed(now=T0, attempts=attempts)).stages if st.name == "mutate"
    )
    assert mutate.metrics == {"caught": 33.0, "total": 40.0, "yield": 0.825}
    assert mutate.metrics["yield"] <= 1  # mutants_per_minute is one shard's rate: left out, not added


def test_one_shard_keeps_its_own_ratios_and_an_empty_total_has_no_yield() -> None:
    one = {
        ("fetch", SOURCES[0]): [ok("fetch")],
        ("mutate", SOURCES[0]): [ok("mutate", caught=9, total=10, **{"yield": 0.9}, mutants_per_minute=30)],
    }
    s = spec(data={"sources": SOURCES[:1], "limits": {"concurrency": 2}})
    assert mutate_of(plan("py", s, Observed(now=T0, attempts=one))).metrics["mutants_per_minute"] == 30
    empty = {(st, src): [ok(st, caught=0, total=0)] for src in SOURCES[:2] for st in ("fetch", "mutate")}
    s2 = spec(data={"sources": SOURCES[:2], "limits": {"concurrency": 2}})
    assert "yield" not in mutate_of(plan("py", s2, Observed(now=T0, attempts=empty))).metrics


def test_a_stage_waiting_in_its_queue_is_pending_and_reconciling_never_failed() -> None:
    s = spec()
    attempts = done_until("sft", s)
    attempts[("sft", None)] = [Attempt("pending", started_at=T0, message="queued: suspended until admitted")]
    p = plan("py", s, Observed(now=T0 + timedelta(hours=2), attempts=attempts))
    sft = next(st for st in p.stages if st.name == "sft")
    assert p.launches == [] and p.phase == "Running" and sft.state == "Pending"
    assert sft.message == "queued: suspended until admitted"
    assert cond(p, "Reconciling").status == "True" and cond(p, "Reconciling").reason == "Queued"
    assert cond(p, "Stalled").status == "False" and "queued" in cond(p, "Ready").message


def test_failed_attempt_waits_for_exponential_backoff_then_retries() -> None:
    s = spec()
    attempts = done_until("sft", s)
    failed = Attempt("failed", started_at=T0, finished_at=T0, message="OOMKilled")
    attempts[("sft", None)] = [failed]
    p = plan("py", s, Observed(now=T0 + timedelta(seconds=3), attempts=attempts))
    assert p.launches == [] and p.requeue_after == pytest.approx(7)
    p = plan("py", s, Observed(now=T0 + timedelta(seconds=10), attempts=attempts))
    assert [(launch.stage, launch.attempt) for launch in p.launches] == [("sft", 2)]
    assert p.launches[0].name.endswith("-sft-2")
    assert ("Warning", "Retrying", "sft attempt 2") in p.events
    # The second failure doubles the wait.
    attempts[("sft", None)] = [
        failed,
        Attempt("failed", finished_at=T0 + timedelta(seconds=20), message="OOMKilled"),
    ]
    p = plan("py", s, Observed(now=T0 + timedelta(seconds=35), attempts=attempts))
    assert p.launches == [] and p.requeue_after == pytest.approx(5)


def test_attempts_exhausted_fails_and_stalls_with_the_reason() -> None:
    s = spec(maxAttempts=2)
    attempts = done_until("ipo", s)
    attempts[("ipo", None)] = [Attempt("failed", finished_at=T0, message="exit 1: CUDA error")] * 2
    p = plan("py", s, Observed(now=T0 + timedelta(hours=1), attempts=attempts))
    assert p.launches == [] and p.phase == "Failed"
    stalled = cond(p, "Stalled")
    assert stalled.status == "True" and stalled.reason == "AttemptsExhausted"
    assert "ipo failed 2 times" in stalled.message and "CUDA error" in stalled.message


def test_gate_failure_stops_with_gate_value_and_threshold() -> None:
    s = spec()
    attempts = done_until("sft", s)
    gate = check("sft.loss", 0.9, "<", 0.5)
    summary = StageSummary(stage="sft", status="gate_failed", gates=[gate], metrics={"loss": 0.9})
    attempts[("sft", None)] = [Attempt("gate_failed", finished_at=T0, summary=summary)]
    p = plan("py", s, Observed(now=T0, attempts=attempts))
    assert p.phase == "Failed" and p.launches == []
    assert cond(p, "Stalled").reason == "GateFailed"
    assert "sft.loss: 0.9 < 0.5 failed" in cond(p, "Stalled").message
    assert cond(p, "SftGatesPassed").status == "False"
    assert next(st for st in p.stages if st.name == "sft").state == "Failed"


def test_all_stages_succeeded_is_ready() -> None:
    s = spec()
    attempts = done_until("eval", s)
    attempts[("eval", None)] = [ok("eval", test_pass_rate=0.7)]
    p = plan("py", s, Observed(now=T0, attempts=attempts))
    assert p.succeeded and p.phase == "Succeeded" and p.launches == [] and p.stage is None
    assert cond(p, "Ready").status == "True" and cond(p, "Stalled").status == "False"
    assert cond(p, "Reconciling").status == "False"


def test_suspend_launches_nothing() -> None:
    p = plan("py", spec(suspend=True), Observed(now=T0))
    assert p.launches == [] and p.phase == "Suspended"
    assert cond(p, "Reconciling").reason == "Suspended"


def test_after_waits_for_dependencies() -> None:
    s = spec(after=["rust", "python"])
    p = plan("ts", s, Observed(now=T0, dependencies={"rust": True, "python": False}))
    assert p.launches == [] and p.phase == "Waiting"
    assert "python" in cond(p, "Reconciling").message and "rust" not in cond(p, "Reconciling").message
    p = plan("ts", s, Observed(now=T0, dependencies={"rust": True, "python": True}))
    assert len(p.launches) == 2


def test_source_added_mid_mutate_is_fetched_then_mutated_but_not_after_mutate_completed() -> None:
    s = spec()
    attempts = {(st, src): [ok(st)] for src in SOURCES[:2] for st in ("fetch", "mutate")}
    s2 = spec(data={"sources": SOURCES, "limits": {"concurrency": 2}})
    launches = plan("py", s2, Observed(now=T0, attempts=attempts)).launches
    assert [(launch.stage, launch.shard) for launch in launches] == [("fetch", SOURCES[2])]
    attempts[("fetch", SOURCES[2])] = [ok("fetch")]
    launches = plan("py", s2, Observed(now=T0, attempts=attempts)).launches
    assert [(launch.stage, launch.shard) for launch in launches] == [("mutate", SOURCES[2])]
    # Once trajectories started, mutate is frozen: the new source is ignored.
    attempts2 = {(st, src): [ok(st)] for src in SOURCES[:2] for st in ("fetch", "mutate")}
    attempts2[("trajectories", None)] = [Attempt("running", started_at=T0)]
    grown = spec(data={"sources": [*SOURCES, "pypi:new@1.0"], "limits": {"concurrency": 2}})
    assert plan("py", grown, Observed(now=T0, attempts=attempts2)).launches == []
    assert s.data.sources == SOURCES


def test_restart_observing_the_same_world_plans_the_same_names() -> None:
    s = spec()
    first = plan("py", s, Observed(now=T0)).launches
    again = plan("py", s, Observed(now=T0 + timedelta(minutes=1))).launches
    assert [launch.name for launch in first] == [launch.name for launch in again]


@pytest.mark.parametrize(
    ("training", "stage", "shard"),
    [
        ("py", "sft", None),
        ("a" * 63, "preferences", None),
        ("rust-adapter", "mutate", "crates:linked-hash-map@0.5.6"),
        ("x", "mutate", "go:github.com/Some/Very/Long/module/path/that/keeps/going@v1.2.3"),
    ],
)
def test_workload_names_are_dns_labels_and_distinct_per_shard(
    training: str, stage: str, shard: str | None
) -> None:
    name = workload_name(training, stage, shard, 3)
    assert len(name) <= 63 and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name), name
    assert name.endswith("-3")
    if shard:
        assert name != workload_name(training, stage, shard + "x", 3)


def test_condition_transition_time_is_kept_when_status_does_not_change() -> None:
    s = spec()
    p1 = plan("py", s, Observed(now=T0))
    p2 = plan("py", s, Observed(now=T0), conditions=p1.conditions)
    assert cond(p1, "Reconciling").last_transition_time == cond(p2, "Reconciling").last_transition_time
