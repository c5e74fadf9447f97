"""Training throughput: fine-tune a model on N MedMCQA questions and print ONE JSON object.

    .venv/bin/python benchmarks/bench_training.py                       # SmolLM2, LoRA, CPU
    .venv/bin/python benchmarks/bench_training.py --n 64 --threads 1 --set per_device_train_batch_size=8
    python benchmarks/bench_training.py --model TinyLlama/TinyLlama-1.1B-Chat-v0.4 --preset tinyllama-1.1b \\
        --device cuda --n 256                                            # QLoRA on a GPU

The run folder goes to a temporary directory (or ``--out``); the JSON has the model, device, examples,
steps, seconds, s/step, tokens/s, peak memory, final loss, order audit and library versions.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import tempfile
import time

from hils_kit.cli.train import parse_settings
from hils_kit.loaders import load_questions
from hils_kit.presets import PRESETS, make_config, preset_for_model, preset_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model name, folder or hub id (default: the preset's model, else smollm2)")
    parser.add_argument("--preset", choices=list(PRESETS), help="default: the preset made for the model")
    parser.add_argument("--n", type=int, default=32, help="questions to train on (default 32)")
    parser.add_argument("--dataset", default="medmcqa", help="question set (default medmcqa)")
    parser.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when available")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="settings",
                        help="override a training setting (repeatable)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--out", help="keep the run folder here (default: a temporary folder)")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)

    model = args.model or (preset_model(args.preset) if args.preset else "smollm2")
    preset = args.preset or preset_for_model(model)
    config = make_config(preset, parse_settings(args.settings))
    table = load_questions(args.dataset).sample(args.n, random_state=0)

    import torch

    from hils_kit.provenance import library_versions
    from hils_kit.training import train

    if args.threads:
        torch.set_num_threads(args.threads)

    start = time.perf_counter()
    # the trainer's progress and loss lines go to stderr so stdout holds only the JSON
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(sys.stderr):
        result = train(table, model=model, config=config, out_dir=args.out or f"{tmp}/run", device=args.device)
    s = result.summary
    print(json.dumps({
        "benchmark": "training", "model": model, "preset": preset, "device": s["device"], "torch_threads": torch.get_num_threads(),
        "quantization": config.quantization, "dataset": args.dataset, "n_examples": s["n_examples_fed"],
        "batch_size": config.per_device_train_batch_size,
        "gradient_accumulation_steps": config.gradient_accumulation_steps, "steps": s["steps"],
        "train_seconds": s["train_seconds"], "seconds_per_step": s["seconds_per_step"],
        "tokens_seen": s["tokens_seen"], "tokens_per_second": s["tokens_per_second"],
        "examples_per_second": s["examples_per_second"], "peak_memory_mb": s["peak_memory_mb"],
        "peak_memory_kind": s["peak_memory_kind"], "final_loss": round(s["final_loss"], 4),
        "mean_loss": round(s["mean_loss"], 4), "order_audit_ok": s["audit_ok"],
        "wall_seconds_incl_loading": round(time.perf_counter() - start, 2), "versions": library_versions(),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
