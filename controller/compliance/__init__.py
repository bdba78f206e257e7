"""GSP compliance core: pure functions and an incremental tracker, no I/O beyond the rulebook.

- `rulebook`: the versioned rulebook (`rulebook.yaml`) holding every number; `load_rulebook`.
- `excursions`: `ExcursionTracker` (live, persistable) and `detect_excursions` (batch).
- `accounting`: where a window's time went (in band, excursion, tolerated, gap).
- `gaps`: recording-gap findings; `probes`: probe health findings.
- `mkt`: mean kinetic temperature and summaries (information only).
- `prediction`: when a compartment will leave its band; `prediction_eval` scores it on the
  simulator (not imported here: it pulls in the edge agent's simulator).
- `verdict`: pass / fail / incomplete for a compartment over a window, with every reason.
"""

from controller.compliance.accounting import TimeAccounting, account_time, excursion_overlaps
from controller.compliance.errors import (
    ComplianceError,
    InsufficientDataError,
    InvalidSampleError,
    RulebookError,
    TrackerStateError,
    UnknownTemperatureClassError,
)
from controller.compliance.excursions import (
    Excursion,
    ExcursionAnalysis,
    ExcursionClosed,
    ExcursionEvent,
    ExcursionOpened,
    ExcursionTracker,
    analyse_samples,
    detect_excursions,
)
from controller.compliance.gaps import GapFinding, recording_gap_findings
from controller.compliance.mkt import Summary, mean_kinetic_temperature_c, temperature_summary
from controller.compliance.models import CompartmentMeta, ProbeMeta, Sample, split_by_compartment
from controller.compliance.prediction import Prediction, predict_band_exit
from controller.compliance.probes import ProbeFinding, probe_findings
from controller.compliance.rulebook import (
    Rulebook,
    TemperatureClass,
    load_rulebook,
    rulebook_from_dict,
)
from controller.compliance.tracker_state import TrackerState
from controller.compliance.verdict import Reason, Verdict, window_verdict

__all__ = [
    "CompartmentMeta",
    "ComplianceError",
    "Excursion",
    "ExcursionAnalysis",
    "ExcursionClosed",
    "ExcursionEvent",
    "ExcursionOpened",
    "ExcursionTracker",
    "GapFinding",
    "InsufficientDataError",
    "InvalidSampleError",
    "Prediction",
    "ProbeFinding",
    "ProbeMeta",
    "Reason",
    "Rulebook",
    "RulebookError",
    "Sample",
    "Summary",
    "TemperatureClass",
    "TimeAccounting",
    "TrackerState",
    "TrackerStateError",
    "UnknownTemperatureClassError",
    "Verdict",
    "account_time",
    "analyse_samples",
    "detect_excursions",
    "excursion_overlaps",
    "load_rulebook",
    "mean_kinetic_temperature_c",
    "predict_band_exit",
    "probe_findings",
    "recording_gap_findings",
    "rulebook_from_dict",
    "split_by_compartment",
    "temperature_summary",
    "window_verdict",
]
