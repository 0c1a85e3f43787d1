"""Orchid's execution engine: plan model and validation, templates, and the plan runner.

Entry points:
- ``validate_plan(document) -> Plan`` (engine.validate): used by the server on create/update and
  by the worker before running.
- ``run_plan(plan, ...) -> ExecutionOutcome`` (engine.run): runs one execution through the ports
  of engine.ports.
"""

from engine.plan import Plan, Step
from engine.run import run_plan
from engine.validate import validate_plan, validate_plan_json

__all__ = ["Plan", "Step", "run_plan", "validate_plan", "validate_plan_json"]
