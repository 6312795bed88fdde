"""Pipelines: a TOML recipe (``recipe``) checked into typed stages (``plan``), run stage by
stage through the library's own functions (``runners``), in a work folder whose every path
one ``WorkLayout`` names (``layout``), with records that make finished work skippable and
interrupted work resumable (``ledger``)."""

from vidcolor.pipeline.layout import WorkLayout, outside_work, render_name, work_folder_problem
from vidcolor.pipeline.ledger import STAGES, Ledger, StageState, file_state, stage_key
from vidcolor.pipeline.plan import Plan, stage_keys
from vidcolor.pipeline.runners import run_pipeline
from vidcolor.reporter import Reporter, TaskBar

__all__ = [
    "STAGES",
    "Ledger",
    "Plan",
    "Reporter",
    "StageState",
    "TaskBar",
    "WorkLayout",
    "file_state",
    "outside_work",
    "render_name",
    "run_pipeline",
    "stage_key",
    "stage_keys",
    "work_folder_problem",
]
