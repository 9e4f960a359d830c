"""KWOK pod-outcome annotations and the Stage documents that read them."""

from __future__ import annotations

import pytest
import yaml

from moa.dev import fake_pods


def test_annotations_for_a_failing_pod():
    assert fake_pods.annotations(fake_pods.FAIL, duration="2s", message="boom", exit_code=3) == {
        "kwok.moa.dev/outcome": "fail",
        "kwok.moa.dev/duration": "2s",
        "kwok.moa.dev/message": "boom",
        "kwok.moa.dev/exit-code": "3",
    }


def test_unknown_outcome_is_refused():
    with pytest.raises(ValueError, match="outcome must be"):
        fake_pods.annotations("crash")


def test_stages_use_the_annotation_constants():
    text = fake_pods.stages_yaml()
    assert "@" not in text.replace("kwok.moa.dev/", "")  # every placeholder filled in
    stages = {doc["metadata"]["name"]: doc for doc in yaml.safe_load_all(text)}
    assert {"pod-succeed", "pod-fail", "node-initialize"} <= set(stages)
    fail = stages["pod-fail"]["spec"]
    assert {
        "key": f'.metadata.annotations["{fake_pods.OUTCOME}"]',
        "operator": "In",
        "values": ["fail"],
    } in fail["selector"]["matchExpressions"]
    assert fail["delay"]["durationFrom"]["expressionFrom"] == f'.metadata.annotations["{fake_pods.DURATION}"]'
    assert fake_pods.EXIT_CODE in fail["next"]["statusTemplate"]
