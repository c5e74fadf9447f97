"""Calibration of the strategy tests on simulated studies with run-to-run noise; prints JSON.

Each design is simulated ``--sims`` times (:func:`hils_kit.stats.simulate.simulate_predictions`: a per-run shift
and a per-run favourite letter). Every strategy is compared with Random Shuffle by
- ``before``: the test the kit ran until issue 23, the questions as the only source of chance (exact McNemar with
  one run per strategy, else a sign-flip test over the per-question means), and
- ``after``: :func:`hils_kit.stats.runs.compare_runs`, the run as the unit (no p-value with one run each).

With no strategy effect the rejection rate at α = 0.05 is the false-positive rate. With a planted effect the
simulated power is set beside the power the kit reports for that design (:func:`hils_kit.stats.runs.run_power`
with the variance components averaged over the null simulations and the mean simulated difference).

    python benchmarks/calibration.py                   # both designs, 1,000 simulated studies each
    python benchmarks/calibration.py --sims 200 > /tmp/calibration.json
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from hils_kit.stats.runs import Components, compare_runs, run_power
from hils_kit.stats.significance import mcnemar_exact, sign_flip_test
from hils_kit.stats.simulate import run_accuracy_sd, simulate_predictions

DESIGNS = {
    # the default study (params/studies/default.yaml): six strategies, one run each, 60 questions per test set
    "default study: 6 strategies × 1 run × 60 questions": {
        "strategies": [
            "random",
            "curriculum",
            "blocked",
            "interleaved",
            "blocked_curriculum",
            "interleaved_curriculum",
        ],
        "runs": 1,
        "questions": 60,
    },
    # the same budget spent on runs instead (benchmarks/default_design.py)
    "2 strategies × 3 runs × 60 questions": {"strategies": ["random", "curriculum"], "runs": 3, "questions": 60},
    "3 strategies × 3 runs × 150 questions": {
        "strategies": ["random", "curriculum", "interleaved"],
        "runs": 3,
        "questions": 150,
    },
}
NOISE = {"run_sd": 0.12, "letter_bias": 0.4}  # run accuracy sd about 3 points, a favourite letter per run


def _matrices(frame, metric: str) -> dict[str, np.ndarray]:
    return {
        strategy: rows.pivot(index="question", columns="run", values=metric).to_numpy(float)
        for strategy, rows in frame.groupby("strategy", sort=False)
    }


def _before(a: np.ndarray, b: np.ndarray, metric: str) -> float:
    if metric == "correct" and a.shape[1] == b.shape[1] == 1:
        return mcnemar_exact(a[:, 0], b[:, 0])["p_value"]
    return sign_flip_test(a.mean(axis=1), b.mean(axis=1), n_resamples=2000)["p_value"]


def simulate(design: dict, sims: int, effect: float, alpha: float, seed: int, metric: str = "correct") -> dict:
    """Rejection rates before and after over ``sims`` studies × the design's comparisons of ``metric`` (correct or
    gold_logprob), with ``effect`` (logits) planted in every strategy but Random Shuffle."""
    before, after, estimates, components, spreads = [], [], [], [], []
    scale = 100.0 if metric == "correct" else 1.0
    for s in range(sims):
        effects = {name: effect for name in design["strategies"][1:]}
        frame = simulate_predictions(
            design["strategies"], design["runs"], design["questions"], effects, seed=seed + s, **NOISE
        )
        spreads.append(run_accuracy_sd(frame) if design["runs"] > 1 else np.nan)
        m = _matrices(frame, metric)
        for name in design["strategies"][1:]:
            before.append(_before(m[name], m["random"], metric) <= alpha)
            out = compare_runs(m[name] * scale, m["random"] * scale)
            estimates.append(out["estimate"])
            if not out["confounded"]:
                after.append(out["p_value"] <= alpha)
                components.append(
                    [out["var_question"], out["run_means_var"], out["var_question_by_strategy"], out["var_residual"]]
                )
    row = {
        "comparisons": len(before),
        "rejection_before": float(np.mean(before)),
        "rejection_after": float(np.mean(after)) if after else None,
        "after_note": "" if after else "one run per strategy: strategy and run confounded, no strategy p-value",
        "mean_difference": float(np.mean(estimates)),
        "run_accuracy_sd_points": float(np.nanmean(spreads)) if design["runs"] > 1 else None,
    }
    if components:
        # averaged without the floors at 0 of single studies: the run component is the mean run-mean variance
        # (unbiased for run + residual / n) less the mean residual / n
        question, run_means, interaction, residual = np.mean(components, axis=0)
        run = run_means - residual / design["questions"]
        mean = Components(question, run, interaction, residual, run_df=2 * design["runs"] - 2)
        row["mean_components"] = {k: float(v) for k, v in mean.as_dict().items()}
        row["kit_power"] = run_power(row["mean_difference"], mean, design["runs"], design["questions"], alpha)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=1000, help="simulated studies per design and effect")
    parser.add_argument("--effect", type=float, default=0.45, help="planted effect in logits (default 0.45)")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.monotonic()
    out = {"sims": args.sims, "alpha": args.alpha, "noise": NOISE, "designs": {}}
    for name, design in DESIGNS.items():
        null = simulate(design, args.sims, 0.0, args.alpha, args.seed)
        planted = simulate(design, args.sims, args.effect, args.alpha, args.seed + 10**6)
        gold = simulate(design, args.sims, 0.0, args.alpha, args.seed, metric="gold_logprob")
        result = {
            **design,
            "null": null,
            "planted": {"effect_logits": args.effect, **planted},
            "null_gold_logprob": gold,
        }
        if planted.get("kit_power") is not None:
            result["power_gap"] = planted["rejection_after"] - planted["kit_power"]
        out["designs"][name] = result
    out["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
