"""Where the kit's training time goes: ``train()``'s steps under torch's profiler, and what the tries to speed it
up gave, each a whole ``train()`` call (compilation included) in a fresh process.

    .venv/bin/python benchmarks/profile_training.py                     # SmolLM2, 16 MedMCQA questions, fp32
    .venv/bin/python benchmarks/profile_training.py --tries base,fused_adamw,compile -o benchmarks/results/x.json

``profile``: self CPU time per torch operator of one run, grouped (matrix products, the LoRA dropout's random
draws, attention, other elementwise work, the optimizer), with the matrix products' own FLOP rate against the
GEMM peak measured in the same run: how near the peak the run could get if everything but the products vanished.

``tries`` (in alternating order, ``--rounds`` times; best of the rounds): ``base`` (the preset as it is),
``fused_adamw`` (``optim=adamw_torch_fused``; the preset's ``adamw_torch`` already steps with foreach kernels),
``compile`` (each decoder layer through ``torch.compile(dynamic=True)``, inductor on the
CPU: padding-free rows change length every step). Each reports seconds, real tokens/s and useful FLOP/s (4 FLOP
per real token per weight every token goes through: ``machine.token_weights``) as a fraction of the GEMM peak of its dtype.

Progress goes to stderr; stdout gets one JSON object (also written to ``-o``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from bench_training import in_fresh_process  # noqa: E402
from machine import gemm_peak, token_weights  # noqa: E402

TRIES = {"base": {}, "fused_adamw": {"optim": "adamw_torch_fused"}, "compile": {}}
GROUPS = {  # operator name fragments -> group; the first match wins
    "matrix products": ("aten::mm", "aten::addmm", "aten::bmm", "aten::linear"),
    "LoRA dropout masks": ("bernoulli", "LoraLinearFunction"),  # torch's draws, or the kit's (numpy's, within)
    "attention": ("scaled_dot_product", "flash_attention"),
    "optimizer": ("lerp", "sqrt", "_foreach", "_fused_adamw", "addcdiv", "addcmul"),
}


def _trainer(n: int, bf16: bool, settings: dict):
    from hils_kit.data.loaders import load_questions
    from hils_kit.train.presets import make_config
    from hils_kit.train.training import build_trainer

    table = load_questions("medmcqa").head(n)
    config = make_config("smollm2-cpu", {"bf16": bf16, **settings})
    out = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"hils-profile-{os.getpid()}")
    return build_trainer(table, "smollm2", config, out, "cpu")


def one_try(name: str, n: int, bf16: bool) -> dict:
    """A whole training run of ``name`` (trainer built, compiled where asked, trained): seconds and tokens."""
    import torch

    from hils_kit.train.training import lean_training

    trainer = _trainer(n, bf16, TRIES[name])
    start = time.perf_counter()
    if name == "compile":
        for layer in trainer.model.base_model.model.model.layers:
            layer.compile(dynamic=True)
    with lean_training(trainer):
        output = trainer.train()
    seconds = time.perf_counter() - start
    return {
        "seconds": round(seconds, 2),
        "real_tokens": trainer._total_train_tokens,
        "n_token_weights": token_weights(trainer.model),
        "train_loss": round(output.training_loss, 4),
        "torch_threads": torch.get_num_threads(),
    }


def profile(n: int, bf16: bool) -> dict:
    """Self CPU seconds per operator group of one training run under ``torch.profiler``."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from hils_kit.train.training import lean_training

    trainer = _trainer(n, bf16, {})
    with torch_profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof, lean_training(trainer):
        trainer.train()
    groups: dict[str, float] = {}
    top, mm_flops, mm_seconds = [], 0.0, 0.0
    for event in sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total):
        seconds = event.self_cpu_time_total / 1e6
        group = next((g for g, keys in GROUPS.items() if any(k in event.key for k in keys)), "other")
        groups[group] = groups.get(group, 0.0) + seconds
        if group == "matrix products":
            mm_flops += event.flops or 0
            mm_seconds += seconds
        if len(top) < 12:
            top.append({"op": event.key, "self_cpu_s": round(seconds, 3), "calls": event.count})
    total = sum(groups.values())
    return {
        "self_cpu_s": round(total, 2),
        "share": {g: round(s / total, 3) for g, s in sorted(groups.items(), key=lambda x: -x[1])},
        "matrix_products_flop_per_s": round(mm_flops / mm_seconds) if mm_seconds else None,
        "top_ops": top,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16, help="MedMCQA training questions")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--tries", default="base,fused_adamw,compile", help=f"comma-separated of {', '.join(TRIES)}")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("-o", "--output", help="also write the JSON here")
    args = parser.parse_args(argv)
    tries = args.tries.split(",")
    unknown = sorted(set(tries) - set(TRIES))
    if unknown:
        parser.error(f"unknown tries {unknown}: use {', '.join(TRIES)}")
    bf16 = args.precision == "bf16"
    dtype = "bfloat16" if bf16 else "float32"
    peak = gemm_peak(dtype)
    print("profiling one run", file=sys.stderr)
    result = {"benchmark": "training profile", "model": "smollm2", "preset": "smollm2-cpu", "n_questions": args.n}
    result |= {"precision": args.precision, "gemm_peak_gflop_per_s": round(peak / 1e9, 1)}
    result["profile"] = in_fresh_process(None, profile, args.n, bf16)
    rate = result["profile"]["matrix_products_flop_per_s"]
    result["profile"]["matrix_products_fraction_of_gemm_peak"] = round(rate / peak, 3) if rate else None
    runs: dict[str, list[dict]] = {name: [] for name in tries}
    for round_ in range(args.rounds):
        for name in tries if round_ % 2 == 0 else tries[::-1]:
            print(f"round {round_ + 1}: {name}", file=sys.stderr)
            runs[name].append(in_fresh_process(None, one_try, name, args.n, bf16))
    result["tries"] = {}
    for name, done in runs.items():
        best = min(done, key=lambda r: r["seconds"])
        useful = 4 * best["n_token_weights"] * best["real_tokens"] / best["seconds"]  # machine.token_weights
        result["tries"][name] = best | {
            "all_seconds": [r["seconds"] for r in done],
            "real_tokens_per_s": round(best["real_tokens"] / best["seconds"], 1),
            "fraction_of_gemm_peak": round(useful / peak, 3),
        }
    result["gemm_peak_gflop_per_s_after"] = round(gemm_peak(dtype) / 1e9, 1)
    result["command"] = "python benchmarks/profile_training.py " + " ".join(argv if argv is not None else sys.argv[1:])
    result["created"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    text = json.dumps(result, indent=1)
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")
    return result


if __name__ == "__main__":
    main()
