"""The pretrained-vs-scratch benchmark's arithmetic: where a validation curve first reaches a target."""

from __future__ import annotations

import pytest

from meit.bench.encoder_init import interpolated_steps_to_reach, steps_to_reach

CURVE = [(10, 2.0), (20, 1.5), (30, 1.2), (40, 1.0)]


def test_first_evaluated_step_at_or_below_target():
    assert steps_to_reach(CURVE, 1.5) == 20
    assert steps_to_reach(CURVE, 1.3) == 30
    assert steps_to_reach(CURVE, 0.9) is None


def test_crossing_is_linear_between_evaluations():
    assert interpolated_steps_to_reach(CURVE, 1.35) == pytest.approx(25.0)
    assert interpolated_steps_to_reach(CURVE, 1.5) == pytest.approx(20.0)
    assert interpolated_steps_to_reach(CURVE, 3.0) == 10.0  # already below at the first evaluation
    assert interpolated_steps_to_reach(CURVE, 0.5) is None
