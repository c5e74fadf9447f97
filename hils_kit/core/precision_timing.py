"""Which precision is faster on this machine, for a model's own matrix shapes, measured: what ``auto`` means on a
CPU.

A CPU's flags say whether it computes bf16 at all, not whether bf16 is faster there: on a 2-core Xeon with
``avx512_bf16`` but no AMX, bf16 GEMMs ran at 104–139 GFLOP/s and fp32 at 199–264, while on one with AMX bf16 ran
four times faster than fp32. The answer also depends on the model: bf16 autocast casts every input, which a large
product repays and a small one does not (the tests' tiny Llama, 32 wide, trained twice as slowly in bf16 on that AMX
machine). So ``auto`` times the linear layers of one block of the model at hand
(:func:`hils_kit.models.shapes.model_shapes`: MLP up and down and an attention projection, 256 tokens;
SmolLM2-135M's when the model is unknown) in fp32 and under bf16 autocast, alternating, best of three rounds, and
takes the faster. The bf16 timing uses weights already in bf16, as the kit computes
(:mod:`hils_kit.core.bf16_weights`). The decision is cached per
processor, thread count, torch version, shapes and :data:`METHOD` under ``$HILS_CACHE/precision/``: a timing drifts
by about 10 % from hour to hour, a cached decision does not.

>>> config_shapes({"hidden_size": 32, "intermediate_size": 64})
((256, 32, 64), (256, 64, 32), (256, 32, 32))
>>> speeds = measured_speeds()                          # doctest: +SKIP
>>> speeds["faster"], speeds["gflops"]                  # doctest: +SKIP
('bf16', {'fp32': 161.2, 'bf16': 361.0})
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import time

from hils_kit.core.paths import cache_dir, write_text_atomic

TOKENS = 256  # the rows of each timed product: about one micro-batch of exam questions
ROUNDS = 3  # each precision timed this often, alternating; the best round counts
SECONDS = 0.1  # the least one round of one precision runs
METHOD = "bf16 weights cast once"  # what the bf16 timing casts (a cache of another method is measured again)


def linear_shapes(hidden: int, intermediate: int, tokens: int = TOKENS) -> tuple:
    """``tokens × in × out`` of one block's MLP up and down projections and an attention projection.

    >>> linear_shapes(576, 1536)
    ((256, 576, 1536), (256, 1536, 576), (256, 576, 576))
    """
    return ((tokens, hidden, intermediate), (tokens, intermediate, hidden), (tokens, hidden, hidden))


SHAPES = linear_shapes(576, 1536)  # SmolLM2-135M: the default model's, and what an unknown model is timed on


def config_shapes(config) -> tuple | None:
    """:func:`linear_shapes` of a transformers config (or a ``config.json`` dict); ``None`` without a width."""
    get = config.get if isinstance(config, dict) else lambda key: getattr(config, key, None)
    if get("text_config") is not None and get("hidden_size") is None:  # a multimodal model: its language model
        return config_shapes(get("text_config"))
    hidden = get("hidden_size") or get("n_embd") or get("d_model")
    if not hidden:
        return None
    return linear_shapes(int(hidden), int(get("intermediate_size") or get("n_inner") or 4 * hidden))


def processor() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else the platform's processor string."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_key() -> dict:
    """What a measurement holds for: the processor, the cores this process may use, torch's threads and version."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"processor": processor(), "cores": cores, "threads": torch.get_num_threads(), "torch": torch.__version__}


def _gflops(bf16: bool, inputs: list, weights: list, repeats: int) -> float:
    """GFLOP/s of ``repeats`` passes over the linear layers, in fp32 or under bf16 autocast (``weights`` in the
    dtype they are computed in)."""
    import torch

    flops = sum(2 * x.shape[0] * x.shape[1] * w.shape[0] for x, w in zip(inputs, weights)) * repeats
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        start = time.perf_counter()
        for _ in range(repeats):
            for x, w in zip(inputs, weights):
                torch.nn.functional.linear(x, w)
        seconds = time.perf_counter() - start
    return flops / seconds / 1e9


def time_precisions(rounds: int = ROUNDS, seconds: float = SECONDS, shapes: tuple = SHAPES) -> dict[str, float]:
    """GFLOP/s of fp32 and of bf16 autocast on ``shapes``, measured side by side: alternating, best of
    ``rounds``, each round at least ``seconds`` long.

    >>> sorted(time_precisions(rounds=1, seconds=0.01))
    ['bf16', 'fp32']
    """
    import torch

    generator = torch.Generator().manual_seed(0)
    inputs = [torch.randn(t, i, generator=generator) for t, i, _ in shapes]
    weights = [torch.randn(o, i, generator=generator) for _, i, o in shapes]
    by_dtype = {False: weights, True: [w.to(torch.bfloat16) for w in weights]}  # bf16 weights cast once, as the kit
    for bf16 in (False, True):  # warm up: kernels chosen, caches filled
        _gflops(bf16, inputs, by_dtype[bf16], 1)
    start = time.perf_counter()
    _gflops(False, inputs, weights, 1)
    repeats = max(1, int(seconds / max(time.perf_counter() - start, 1e-6)))
    best = {"fp32": 0.0, "bf16": 0.0}
    for _ in range(rounds):
        for name in best:
            best[name] = max(best[name], _gflops(name == "bf16", inputs, by_dtype[name == "bf16"], repeats))
    return {name: float(f"{value:.4g}") for name, value in best.items()}


def measured_speeds(refresh: bool = False, shapes: tuple = SHAPES) -> dict:
    """The fp32 and bf16 GFLOP/s of this machine on ``shapes`` (:func:`time_precisions`) and the ``faster`` one,
    from the cache when this processor, thread count, torch version and shapes were measured before
    (``refresh``: measure again).

    Returns ``{"faster", "gflops": {"fp32", "bf16"}, "shapes", "method", "machine": machine_key(), "measured": ISO time,
    "cache": path}``.
    """
    shapes = [list(shape) for shape in shapes]
    machine = machine_key()
    digest = hashlib.sha256(json.dumps([machine, shapes, METHOD], sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / "precision" / f"{digest}.json"
    if path.is_file() and not refresh:
        try:
            cached = json.loads(path.read_text(encoding="utf-8"))
            if cached.get("machine") == machine and cached.get("shapes") == shapes and cached.get("method") == METHOD:
                return {**cached, "cache": str(path)}
        except (OSError, ValueError):
            pass  # a damaged cache file is measured again and replaced
    gflops = time_precisions(shapes=tuple(tuple(shape) for shape in shapes))
    record = {
        "faster": "bf16" if gflops["bf16"] > gflops["fp32"] else "fp32",
        "gflops": gflops,
        "shapes": shapes,
        "method": METHOD,
        "machine": machine,
        "measured": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(record, indent=1))
    return {**record, "cache": str(path)}
