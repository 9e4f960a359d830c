"""moa.api: the resources (AdapterTraining, Adapter), their defaults and gates, the artifact
layout and the stage vocabulary. Imports nothing else of moa; the CRDs are generated from here."""

from moa.api.adapter import Adapter, AdapterSpec, AdapterStatus
from moa.api.common import API_VERSION, GROUP, VERSION, Condition
from moa.api.gates import GateResult, check
from moa.api.layout import Layout
from moa.api.stages import STAGE_NAMES, STAGES, StageConfig, StageSummary
from moa.api.training import AdapterTraining, AdapterTrainingSpec, AdapterTrainingStatus, load_training

__all__ = [
    "API_VERSION",
    "GROUP",
    "STAGES",
    "STAGE_NAMES",
    "VERSION",
    "Adapter",
    "AdapterSpec",
    "AdapterStatus",
    "AdapterTraining",
    "AdapterTrainingSpec",
    "AdapterTrainingStatus",
    "Condition",
    "GateResult",
    "Layout",
    "StageConfig",
    "StageSummary",
    "check",
    "load_training",
]
