"""Two checkouts of the kit side by side: ``trainer.train()`` on the same questions, each run in a fresh process,
the trees alternating round by round (this host's speed drifts by 10 % within an hour, so only runs side by side
compare).

    git worktree add /tmp/before HEAD~3
    .venv/bin/python benchmarks/compare_trees.py /tmp/before . --rounds 3 -o benchmarks/results/x.json

Each run builds the kit's trainer for SmolLM2's preset (``build_trainer``, not timed) and times ``trainer.train()``
within ``lean_training``, as :func:`hils_kit.train.training.train` runs it. Reported per tree and precision: every
round's seconds and the training loss (equal losses say the two trees train the same; the kit's LoRA dropout masks
may differ between versions). Progress goes to stderr; stdout gets one JSON object (also written to ``-o``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

RUN = r"""
import json, sys, tempfile, time
from hils_kit.data.loaders import load_questions
from hils_kit.train.presets import make_config
from hils_kit.train.training import build_trainer, lean_training
n, precision = int(sys.argv[1]), sys.argv[2]
config = make_config("smollm2-cpu", {"bf16": precision == "bf16"})
trainer = build_trainer(load_questions("medmcqa").head(n), "smollm2", config, tempfile.mkdtemp() + "/run", "cpu")
start = time.perf_counter()
with lean_training(trainer):
    output = trainer.train()
print(json.dumps({"seconds": round(time.perf_counter() - start, 2), "train_loss": round(output.training_loss, 4)}))
"""


def one_run(tree: str, n: int, precision: str) -> dict:
    """``trainer.train()`` of the kit in ``tree``, in a fresh Python with that tree first on its path."""
    env = dict(os.environ, PYTHONPATH=os.path.abspath(tree), HILS_PROGRESS="off")
    done = subprocess.run(
        [sys.executable, "-c", RUN, str(n), precision], env=env, cwd=tree, capture_output=True, text=True
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith('{"seconds"')]
    if done.returncode or not lines:
        raise RuntimeError(f"{tree} ({precision}) failed:\n{done.stderr[-2000:]}")
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs=2, help="two checkouts of the kit (the first is 'before')")
    parser.add_argument("--n", type=int, default=32, help="MedMCQA training questions (default 32)")
    parser.add_argument("--precisions", default="fp32,bf16", help="comma-separated of fp32, bf16")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("-o", "--output", help="also write the JSON here")
    args = parser.parse_args(argv)
    runs: dict[str, dict[str, list[dict]]] = {p: {tree: [] for tree in args.trees} for p in args.precisions.split(",")}
    for precision, by_tree in runs.items():
        for round_ in range(args.rounds):
            for tree in args.trees if round_ % 2 == 0 else args.trees[::-1]:
                by_tree[tree].append(one_run(tree, args.n, precision))
                print(f"[compare] {precision} round {round_ + 1} {tree}: {by_tree[tree][-1]}", file=sys.stderr)
    revisions = {
        tree: subprocess.run(
            ["git", "-C", tree, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        for tree in args.trees
    }
    result = {
        "benchmark": "trainer.train() of two trees, alternating, fresh processes",
        "n_questions": args.n,
        "revisions": revisions,  # the working tree's changes, if any, are not in its revision
        "runs": {p: {t: [r["seconds"] for r in rs] for t, rs in by.items()} for p, by in runs.items()},
        "train_loss": {p: {t: rs[0]["train_loss"] for t, rs in by.items()} for p, by in runs.items()},
        "speedup_best_of_rounds": {
            p: round(min(r["seconds"] for r in by[args.trees[0]]) / min(r["seconds"] for r in by[args.trees[1]]), 3)
            for p, by in runs.items()
        },
        "command": "python benchmarks/compare_trees.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")
    return result


if __name__ == "__main__":
    main()
