"""How early the predictor warns of a failing compressor, and how often it warns falsely.

Simulated compartments (the simulator's reefer physics: hot ambient with a daily swing,
defrost every 6 h, doors opened now and then) run for a day each; half of them lose their
compressor at a random time. The predictor is fed every 30 s exactly as the controller feeds
it. Reported per seed: the lead time between the first warning and the band exit (median,
shortest), failures missed, and false warnings per compartment-day (and how many of those
came during or right after a defrost).

    python bench/bench_prediction.py [--compartments 24] [--hours 24] [--seeds 1 2 3]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict

from controller.compliance.prediction_eval import evaluate_predictor
from controller.compliance.rulebook import load_rulebook


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compartments", type=int, default=24)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    rules = load_rulebook()
    rows = []
    for seed in args.seeds:
        started = time.monotonic()
        result = evaluate_predictor(
            compartments=args.compartments, hours=args.hours, seed=seed, rules=rules
        )
        rows.append(
            {
                "seed": seed,
                "failures": result.failures,
                "missed": result.missed,
                "too_fast_to_warn": result.too_fast,
                "median_lead_min": result.median_lead_min,
                "min_lead_min": result.min_lead_min,
                "false_warnings_per_compartment_day": round(
                    result.false_warnings_per_compartment_day, 2
                ),
                "false_warnings_in_defrost": result.false_warnings_in_defrost,
                "false_warnings": result.false_warnings,
                "seconds": round(time.monotonic() - started),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"rulebook": rules.version, "prediction": asdict(rules.prediction)}))


if __name__ == "__main__":
    main()
