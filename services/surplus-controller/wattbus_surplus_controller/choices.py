"""What a person changes on a loadpoint from the UI or Home Assistant: mode, current limits, plan.

Pure functions on `LoadpointChoices`, so the service only routes the command and answers; the
checks live here beside the fields they guard.
"""

from __future__ import annotations

from typing import Any

from wattbus import messages as m

from .model import LoadpointChoices
from .plan import set_plan

LOADPOINT_COMMANDS = "set_loadpoint_mode, set_loadpoint_limits, set_loadpoint_plan"


def apply_choice(settings: LoadpointChoices, command: m.CommandBase) -> tuple[m.CommandStatus, str]:
    """Change `settings` as the command says; ("ok", "") or the status and why nothing changed."""
    if isinstance(command, m.SetLoadpointMode):
        settings.mode = command.mode
    elif isinstance(command, m.SetLoadpointLimits):
        low = command.min_current_a if command.min_current_a is not None else settings.min_current_a
        high = command.max_current_a if command.max_current_a is not None else settings.max_current_a
        if low > high:
            return "invalid", f"min_current_a {low:g} A above max_current_a {high:g} A"
        settings.min_current_a, settings.max_current_a = low, high
    elif isinstance(command, m.SetLoadpointPlan):
        if (problem := set_plan(settings, command)) is not None:
            return "invalid", problem
    else:
        return "refused", f"{command.__struct_config__.tag} is not a loadpoint command ({LOADPOINT_COMMANDS})"
    return "ok", ""


def applied(settings: LoadpointChoices) -> dict[str, Any]:
    """The choices now in force, as the command result's `applied` reports them."""
    return {"mode": settings.mode, "min_current_a": settings.min_current_a, "max_current_a": settings.max_current_a,
            "plan_soc_pct": settings.plan_soc_pct, "plan_time": settings.plan_time,
            "plan_min_soc_pct": settings.plan_min_soc_pct}
