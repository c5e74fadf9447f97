"""Behaviour fingerprint of the kit, to check that a restructuring changed nothing: the smoke study's analysis
tables and per-cell orders and predictions, 84 planned orders, and the letter probabilities of the tiny model and
SmolLM2 on 24 MedMCQA questions, all in fp32. Run it before and after a change, then compare the two folders.

    .venv/bin/python benchmarks/fingerprint.py /tmp/before        # on the old commit
    .venv/bin/python benchmarks/fingerprint.py /tmp/after         # on the new one
    .venv/bin/python benchmarks/fingerprint.py --compare /tmp/before /tmp/after

Prints JSON: a hash per artefact, or (``--compare``) which artefacts differ and the largest probability change.
Wall-clock columns (``*seconds*``) are left out of the table hashes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

STRATEGY_KEYS = ("random", "curriculum", "blocked", "blocked_curriculum", "interleaved", "interleaved_curriculum")


def _hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _table_hash(path: Path) -> str:
    table = pd.read_csv(path)
    return _hash(table[[c for c in table.columns if "seconds" not in c]].to_csv(index=False).encode())


def capture(out: Path) -> dict:
    """Run the smoke study and the scorers into ``out``; return the hashes."""
    from hils_kit.data.loaders import load_questions
    from hils_kit.models.loading import load_model
    from hils_kit.order.orderings import order_questions
    from hils_kit.score.scoring import letter_probabilities

    out.mkdir(parents=True, exist_ok=True)
    run = out / "run"
    if not run.exists():
        hils = str(Path(sys.executable).parent / "hils")
        env = {**os.environ, "HILS_PRECISION": "fp32"}
        subprocess.run([hils, "study", "params/studies/smoke.yaml", "--out", str(run)], check=True, env=env)
    questions = load_questions("medmcqa")
    for name in ("tiny", "smollm2"):
        model, tokenizer = load_model(name)
        probs = letter_probabilities(model, tokenizer, questions.head(24), precision="fp32")
        np.save(out / f"probs_{name}.npy", np.asarray(probs, dtype=np.float64))
    table = questions.head(200).copy()
    table["difficulty"] = np.random.default_rng(0).random(len(table)).round(2)
    orders = {
        f"{s}/{v}/{seed}/{co}": order_questions(table, s, variant=v, seed=seed, category_order=co, rounds=3)[
            "id"
        ].tolist()
        for s in (*STRATEGY_KEYS, "anti_curriculum")
        for v in ("strict", "tiers")
        for seed in (0, 7)
        for co in ("size", "name", "shuffle")
    }
    (out / "orders.json").write_text(json.dumps(orders))
    return hashes(out)


def hashes(out: Path) -> dict:
    study = out / "run" / "runs" / "smoke"
    found = {f"analysis/{p.name}": _table_hash(p) for p in sorted((study / "analysis").glob("*.csv"))}
    for cell in sorted((study / "cells").iterdir()):
        for path in [cell / "train" / "order_planned.csv", *sorted(cell.glob("predictions_*.csv"))]:
            found[f"cells/{cell.name}/{path.name}"] = _table_hash(path)
    found["orders.json"] = _hash((out / "orders.json").read_bytes())
    return found


def compare(before: Path, after: Path) -> dict:
    a, b = hashes(before), hashes(after)
    probs = {
        name: float(np.nanmax(np.abs(np.load(before / f"probs_{name}.npy") - np.load(after / f"probs_{name}.npy"))))
        for name in ("tiny", "smollm2")
    }
    return {
        "artefacts": len(a),
        "differ": sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k)),
        "max_abs_probability_change": probs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="OUT, or BEFORE AFTER with --compare")
    parser.add_argument("--compare", action="store_true", help="compare two captured folders")
    args = parser.parse_args()
    result = compare(*args.folders) if args.compare else capture(args.folders[0])
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
