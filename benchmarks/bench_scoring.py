"""Time the kit's letter scorer against the paper's per-option method on the same model and questions.

    .venv/bin/python benchmarks/bench_scoring.py [--model smollm2] [--n 64] [--data medmcqa] [--batch-size 32]
                                                 [--paper-batch-size N] [--threads T] [--compile] [--profile]
                                                 [-o FILE]

Both score the same seeded, category-stratified sample with the same prompts, alternating chunk by chunk
(2 kit batches at a time) so that a busy machine slows all alike. The kit scores in its default precision
(``--precision``: ``HILS_PRECISION``, else the faster of fp32 and bf16 as measured on this machine:
``precision_decision``) and, in the same loop, in the other one (``kit_other_precision_*``, ``default_vs_other``: the
default must not be more than 5 % slower); the paper's method in fp32. The kit: the prompts' shared prefix once, then
``--batch-size`` prompts per forward pass (on a CPU end to end in one row, each attending the prefix and itself;
elsewhere left-padded), last-position logits only, softmax over the option letters
(:func:`hils_kit.score.scoring.letter_probabilities`). The paper: one right-padded sequence per (question,
option), full logits, mean cross-entropy over the whole sequence, lowest wins
(:func:`hils_kit.score.scoring.per_option_losses`), timed twice: with the paper code's own batching
(``--paper-batch-size``; default as its ``inference.py`` ran: MedMCQA one question, i.e. 4 sequences, per
forward pass; other sets 8 questions) and with the kit's batch size (``--batch-size`` questions per pass).
The per-option losses are turned into normalised letter probabilities
(:func:`hils_kit.score.scoring.probabilities_from_losses`) to compare them with the kit's.

On a GPU (``--device cuda``, the default where there is one) each precision scores its own copy of the model, with
the weights in the dtype the kit loads them in for it (:func:`hils_kit.models.loading.weights_dtype`: bf16 or
float32); on a CPU one float32 model serves both. Progress lines go to stderr; stdout gets only the JSON.

The kit's arithmetic rate is reported beside the GEMM peak of its dtype measured in the same run
(``kit_flop_per_s``: 2 FLOP per weight of the decoder's linear layers per token computed, the shared prefix counted once
per call; the attention's own FLOPs left out), which says how much faster the kit could still get.
``paper_over_kit_flop`` is the paper method's FLOPs over the kit's (every option's whole sequence, with the
LM head at every position, against the kit's tokens without the head): the speed ratio the two would have at
the same FLOP/s, i.e. what the kit's speed-up can reach while both run at the GEMM peak. Scoring chunk by
chunk between the paper method's long passes costs the kit cache and allocator warmth, so ``kit_alone`` also times
it as a study's evaluation runs, the whole table in one call, in each precision (alternating, best of 3), with its
FLOP/s as a fraction of the GEMM peak of that dtype (both peaks measured in the same run). ``--profile`` says
where that time goes: the share of operator time of the matrix products, attention, casts and copies, and the
rest, and the products' own FLOP/s against the peak (what the kit could reach if nothing else took time). On a CPU
``kit_alone`` also times the products alone (``products_alone_*``: the kit's linear layers over each of its batches'
rows, the shared prefix's pass and the padding included, weights and activations already in the dtype, nothing
else), the ceiling of the kit's fraction of the peak for these shapes and batches, and their share of the kit's time.

Prints one JSON object: model, n, seconds and questions/s of each, the speed ratios (``speed_ratio`` against
the paper's batching, ``speed_ratio_same_batch`` against the same batch size), whether the kit's fp32 predictions
are the paper method's and the largest difference between the two sets of probabilities, how far the kit's bf16
probabilities are from its fp32 ones (``bf16_*``: bf16 keeps 8 bits of mantissa, so on SmolLM2's 30 layers a few
hundredths, and a near-tie may flip), the machine's load average before
and after (on a shared CPU, other jobs slow the kit's small forward passes more than the reference's large
ones), and versions. Exits 1 when the kit's fp32 predictions differ from the paper method's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time

import numpy as np

from hils_kit.core.precision import PRECISIONS
from hils_kit.score.scoring import BATCH_SIZE

GROUPS = {  # operator name fragments -> group; the first match wins
    "matrix products": ("aten::mm", "aten::addmm", "aten::bmm", "aten::linear"),
    "attention": ("scaled_dot_product", "flash_attention"),
    "casts and copies": ("aten::copy_", "aten::_to_copy", "aten::cat"),
}


def operator_profile(call) -> dict:
    """Self CPU seconds of ``call()`` per operator group under torch's profiler, and the products' FLOP/s."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        call()
    groups: dict[str, float] = {}
    flops = product_seconds = 0.0
    for event in prof.key_averages():
        seconds = event.self_cpu_time_total / 1e6
        group = next((g for g, keys in GROUPS.items() if any(k in event.key for k in keys)), "other")
        groups[group] = groups.get(group, 0.0) + seconds
        if group == "matrix products":
            flops, product_seconds = flops + (event.flops or 0), product_seconds + seconds
    total = sum(groups.values())
    return {
        "self_cpu_s": round(total, 3),
        "share": {g: round(t / total, 3) for g, t in sorted(groups.items(), key=lambda x: -x[1])},
        "matrix_products_flop_per_s": round(flops / product_seconds),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2", help="model name or folder (default smollm2)")
    parser.add_argument("--n", type=int, default=64, help="questions (default 64)")
    parser.add_argument("--data", default="medmcqa", help="data set name or question file (default medmcqa)")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=BATCH_SIZE,
        help=f"questions per forward pass, both methods (default {BATCH_SIZE}, the kit's)",
    )
    parser.add_argument(
        "--paper-batch-size",
        type=int,
        help="questions per forward pass of the paper's method as its code ran (default: 1 for medmcqa, else 8)",
    )
    parser.add_argument("--template", default="paper", help="prompt template (default paper)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the question sample (default 0)")
    parser.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when available")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="the kit's precision: auto = HILS_PRECISION, else the faster of fp32 and bf16 measured on this machine "
        "(the kit's default); the paper's method always runs in fp32",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="the kit's scoring with each decoder layer through torch.compile(dynamic=True), inductor on the CPU "
        "(compile_seconds: the warm-up, compilation included)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also run the kit's whole-table scoring once per precision under torch's profiler (profile: the share "
        "of operator time per group, and the matrix products' own FLOP/s against the peak)",
    )
    parser.add_argument("-o", "--output", help="also write the JSON here")
    args = parser.parse_args(argv)

    import torch
    from machine import gemm_peak, products_seconds, token_weights

    from hils_kit.core.paths import write_text_atomic
    from hils_kit.core.precision import native_bf16, precision_record, use_bf16
    from hils_kit.core.provenance import library_versions
    from hils_kit.data.prompts import format_completion, prompts_of
    from hils_kit.data.questions import LETTERS
    from hils_kit.models.loading import load_model, weights_dtype
    from hils_kit.models.shapes import model_shapes
    from hils_kit.score.evaluation import resolve_test_sets
    from hils_kit.score.scoring import (
        letter_probabilities,
        pass_tokens,
        per_option_losses,
        predict,
        probabilities_from_losses,
        shared_prefix,
    )

    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    shapes = model_shapes(args.model)  # what auto is measured on
    bf16 = use_bf16(args.precision, device, shapes)
    default, other_name = ("bf16", "fp32") if bf16 else ("fp32", "bf16")
    paper_batch = args.paper_batch_size or (1 if args.data == "medmcqa" else 8)
    (table,) = resolve_test_sets([args.data], limit=args.n, seed=args.seed).values()
    load_before = os.getloadavg()[0]
    with contextlib.redirect_stdout(sys.stderr):
        loaded = {}  # dtype -> model: on a GPU bf16 and fp32 weights, on a CPU one fp32 model for both precisions
        for name in ("fp32", "bf16"):
            dtype = weights_dtype(device, name)
            if dtype not in loaded:
                loaded[dtype], tokenizer = load_model(args.model, dtype=dtype, device=device)
        models = {name: loaded[weights_dtype(device, name)] for name in ("fp32", "bf16")}
        model = models["fp32"]  # the paper's method runs in fp32
        warm = table.head(2)  # first calls pay one-off costs (allocations, kernel selection)
        start = time.perf_counter()
        if args.compile:
            layers = [m for net in loaded.values() for m in net.modules()]
            for layer in [m for m in layers if type(m).__name__.endswith("DecoderLayer")]:
                layer.compile(dynamic=True)
        for name in (default, other_name):
            letter_probabilities(models[name], tokenizer, warm, args.template, args.batch_size, precision=name)
        warm_up_s = time.perf_counter() - start
        per_option_losses(model, tokenizer, warm, args.template, args.batch_size)
        per_option_losses(model, tokenizer, warm, args.template, paper_batch)

        # alternate the methods chunk by chunk, so all see the same machine load
        width = int(table["options"].map(len).max())
        fast, losses = np.full((len(table), width), np.nan), np.full((len(table), width), np.nan)
        same_batch, other = np.full((len(table), width), np.nan), np.full((len(table), width), np.nan)
        fast_s = ref_s = same_s = other_s = 0.0
        chunk = 2 * args.batch_size
        for start in range(0, len(table), chunk):
            part = table.iloc[start : start + chunk]
            rows, w = slice(start, start + len(part)), int(part["options"].map(len).max())
            t = time.perf_counter()
            fast[rows, :w] = letter_probabilities(
                models[default], tokenizer, part, args.template, args.batch_size, precision=default
            )
            fast_s += time.perf_counter() - t
            t = time.perf_counter()
            other[rows, :w] = letter_probabilities(
                models[other_name], tokenizer, part, args.template, args.batch_size, precision=other_name
            )
            other_s += time.perf_counter() - t
            t = time.perf_counter()
            losses[rows, :w] = per_option_losses(model, tokenizer, part, args.template, paper_batch)
            ref_s += time.perf_counter() - t
            t = time.perf_counter()
            same_batch[rows, :w] = per_option_losses(model, tokenizer, part, args.template, args.batch_size)
            same_s += time.perf_counter() - t
        profiles = {
            name: operator_profile(
                lambda: letter_probabilities(
                    models[name], tokenizer, table, args.template, args.batch_size, precision=name
                )
            )
            for name in (("fp32", "bf16") if args.profile else ())
        }
        alone = {"fp32": [], "bf16": []}  # the kit scoring the whole table in one call, as a study's evaluation does
        for _ in range(3):
            for name in alone:
                t = time.perf_counter()
                letter_probabilities(models[name], tokenizer, table, args.template, args.batch_size, precision=name)
                alone[name].append(time.perf_counter() - t)
    reference = probabilities_from_losses(losses, tokenizer, table, args.template)
    kit_fp32, kit_bf16 = (other, fast) if bf16 else (fast, other)  # the kit's fp32 is held to the paper's method
    bf16_diff = np.nanmax(np.abs(kit_bf16 - kit_fp32))
    top_two = np.sort(np.nan_to_num(kit_fp32, nan=0.0), axis=1)[:, -2:]
    clear = top_two[:, 1] - top_two[:, 0] > 2 * bf16_diff  # a flip of these would need a larger difference
    peaks = {"fp32": gemm_peak("float32", device=device), "bf16": gemm_peak("bfloat16", device=device)}
    peak = peaks["bf16" if bf16 else "fp32"]
    head = model.get_output_embeddings()  # applied at one position per question only: left out
    linear_weights = token_weights(model)
    computed = 0  # tokens the kit ran through the layers: per chunk, its prefix once and every prompt's rest
    for start in range(0, len(table), chunk):
        encoded = tokenizer(prompts_of(table.iloc[start : start + chunk], args.template))["input_ids"]
        computed += sum(len(e) for e in encoded) - (len(encoded) - 1) * shared_prefix(encoded)
    kit_flop_per_s = 2 * linear_weights * computed / fast_s
    encoded = tokenizer(prompts_of(table, args.template))["input_ids"]
    whole = 2 * linear_weights * (sum(len(e) for e in encoded) - (len(encoded) - 1) * shared_prefix(encoded))
    # the products alone: the kit's linear layers over each of its batches' rows (padding included), no casts
    rows = pass_tokens(model, encoded, args.batch_size)
    weights = [m.weight for m in model.modules() if isinstance(m, torch.nn.Linear) and m is not head]
    alone_products = (
        {name: products_seconds(weights, rows, dtype) for name, dtype in (("fp32", "float32"), ("bf16", "bfloat16"))}
        if device == "cpu"
        else {}
    )
    kit_alone = {
        name: {
            "seconds": round(min(times), 3),
            "all_seconds": [round(x, 3) for x in times],
            "questions_per_s": round(len(table) / min(times), 2),
            "flop_per_s": round(whole / min(times) / 1e9, 1) * 1e9,
            "fraction_of_gemm_peak": round(whole / min(times) / peaks[name], 3),  # of its own dtype's peak
            **(
                {  # the ceiling: the same useful FLOPs at the rate of the products alone
                    "products_alone_seconds": round(alone_products[name], 3),
                    "products_alone_fraction_of_gemm_peak": round(whole / alone_products[name] / peaks[name], 3),
                    "products_share_of_kit_time": round(alone_products[name] / min(times), 3),
                }
                if name in alone_products
                else {}
            ),
        }
        for name, times in alone.items()
    }
    # the paper's method runs every option's whole sequence and the LM head at every position (padding left out)
    option_texts = [
        prompt + format_completion(LETTERS[k])
        for prompt, options in zip(prompts_of(table, args.template), table["options"])
        for k in range(len(options))
    ]
    paper_tokens = sum(len(e) for e in tokenizer(option_texts)["input_ids"])
    paper_over_kit_flop = paper_tokens * (linear_weights + head.weight.numel()) / (computed * linear_weights)

    result = {
        "model": args.model,
        "data": args.data,
        "n": len(table),
        "batch_size": args.batch_size,
        "paper_batch_size": paper_batch,
        "kit_precision": "bf16 autocast" if bf16 else "fp32",
        "compiled": args.compile,
        "compile_seconds": round(warm_up_s, 2) if args.compile else None,  # the warm-up of both precisions
        "precision_decision": precision_record(args.precision, device, shapes),
        "native_bf16": native_bf16(device),
        "kit_other_precision": "fp32" if bf16 else "bf16 autocast",
        "kit_other_precision_seconds": round(other_s, 3),
        "kit_other_precision_questions_per_s": round(len(table) / other_s, 3),
        "default_vs_other": round(other_s / fast_s, 3),  # > 1: the default is faster
        "default_within_5_percent_of_other": bool(other_s / fast_s >= 0.95),
        "kit_seconds": round(fast_s, 3),
        "paper_seconds": round(ref_s, 3),
        "kit_questions_per_s": round(len(table) / fast_s, 3),
        "paper_questions_per_s": round(len(table) / ref_s, 3),
        "paper_same_batch_seconds": round(same_s, 3),
        "paper_same_batch_questions_per_s": round(len(table) / same_s, 3),
        "speed_ratio": round(ref_s / fast_s, 2),
        "speed_ratio_same_batch": round(same_s / fast_s, 2),
        "kit_tokens_computed": computed,
        "kit_flop_per_s": round(kit_flop_per_s / 1e9, 1) * 1e9,
        "gemm_peak_flop_per_s": round(peak / 1e9, 1) * 1e9,
        "kit_fraction_of_gemm_peak": round(kit_flop_per_s / peak, 3),
        "gemm_peaks_gflop_per_s": {name: round(value / 1e9, 1) for name, value in peaks.items()},
        "kit_alone": kit_alone,  # each precision scoring the whole table, alternating, best of 3
        "profile": {
            name: found
            | {"matrix_products_fraction_of_gemm_peak": round(found["matrix_products_flop_per_s"] / peaks[name], 3)}
            for name, found in profiles.items()
        },
        "paper_tokens_computed": paper_tokens,
        "paper_over_kit_flop": round(paper_over_kit_flop, 2),  # the speed ratio at equal FLOP/s
        "identical_predictions": bool((predict(kit_fp32) == predict(-losses)).all()),  # the kit in fp32
        "same_predictions": int((predict(kit_fp32) == predict(-losses)).sum()),
        "max_abs_prob_diff": float(np.nanmax(np.abs(kit_fp32 - reference))),
        "bf16_same_predictions_as_fp32": int((predict(kit_bf16) == predict(kit_fp32)).sum()),
        "bf16_max_abs_prob_diff": float(bf16_diff),
        "bf16_flips_where_fp32_is_clear": int((predict(kit_bf16) != predict(kit_fp32))[clear].sum()),
        "paper_batchings_agree": bool((predict(-same_batch) == predict(-losses)).all()),
        "device": torch.cuda.get_device_name() if device == "cuda" else device,
        "torch_threads": torch.get_num_threads(),
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],  # other jobs slow both
        "command": "python benchmarks/bench_scoring.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "versions": library_versions(),
    }
    text = json.dumps(result)
    print(text)
    if args.output:
        write_text_atomic(args.output, text + "\n")
    return result


if __name__ == "__main__":
    out = main()  # the kit's fp32 must predict what the paper's method predicts, question for question
    sys.exit(0 if out["identical_predictions"] else 1)
