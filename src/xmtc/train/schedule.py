"""Learning-rate schedules as pure functions of the step."""

from __future__ import annotations

import math


def lr_at(step: int, total_steps: int, peak: float, schedule: str = "constant", warmup_steps: int = 0) -> float:
    """Learning rate at optimisation step ``step`` (0-based).

    Linear warmup from 0 to ``peak`` over ``warmup_steps``, then ``constant``, ``cosine`` decay to 0, or
    ``linear`` decay to 0 at ``total_steps``.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    if schedule == "constant" or total_steps <= warmup_steps:
        return peak
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    if schedule == "cosine":
        return peak * 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "linear":
        return peak * (1.0 - progress)
    raise ValueError(f"unknown schedule {schedule!r}")
