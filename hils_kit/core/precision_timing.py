"""Which precision is faster on this machine, for a model's own matrix shapes, measured: what ``auto`` means.

A CPU's flags say whether it computes bf16 at all, not whether bf16 is faster there: on a 2-core Xeon with
``avx512_bf16`` but no AMX, bf16 GEMMs ran at 104–139 GFLOP/s and fp32 at 199–264, while on one with AMX bf16 ran
four times faster than fp32. The answer also depends on the model: bf16 autocast casts every input, which a large
product repays and a small one does not (the tests' tiny Llama, 32 wide, trained twice as slowly in bf16 on that AMX
machine). So ``auto`` times the linear layers of one block of the model at hand
(:func:`hils_kit.models.shapes.model_shapes`: MLP up and down and an attention projection, 256 tokens;
SmolLM2-135M's when the model is unknown) in fp32 and under bf16 autocast, alternating, best of three rounds, and
takes the faster. The bf16 timing uses weights already in bf16, as the kit computes
(:mod:`hils_kit.core.bf16_weights`). On a GPU the products are the smaller part: on an H200, SmolLM2-135M trained
1.47x faster in fp32 than in bf16 (bf16's casts, norms and kernel launches cost more than its products save), so there
``auto`` times a training step (forward and backward) of one layer of the model's widths instead
(:func:`time_layer_steps`, :data:`GPU_METHOD`). The decision is cached per processor (or GPU), thread count, torch
version, shapes and method under ``$HILS_CACHE/precision/``: a timing drifts by about 10 % from hour to hour, a
cached decision does not.

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
GPU_METHOD = "one layer's training step"  # what is timed on a GPU (:func:`layer_step_gflops`)


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


def machine_key(device: str = "cpu") -> dict:
    """What a measurement holds for: the processor, the cores this process may use, torch's threads and version; on
    a GPU its name and torch's CUDA version instead of the cores and threads."""
    import torch

    if device.startswith("cuda"):
        name = torch.cuda.get_device_name(torch.device(device))
        return {"gpu": name, "cuda": torch.version.cuda, "torch": torch.__version__}
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


def layer_block(shapes: tuple, bf16: bool, device: str = "cpu"):
    """A one-layer Llama of the widths in ``shapes`` (heads of 64 where the width allows), frozen, with its weights in
    the dtype :func:`hils_kit.models.loading.load_model` gives them for the precision on ``device``.

    >>> layer_block(linear_shapes(32, 64), bf16=False).config.hidden_size
    32
    """
    import torch
    from transformers import LlamaConfig, LlamaModel

    hidden, intermediate = shapes[0][1], shapes[0][2]
    heads = hidden // 64 if hidden % 64 == 0 else 1
    config = LlamaConfig(
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        num_hidden_layers=1,
        vocab_size=8,
        attn_implementation="sdpa",
    )
    torch.manual_seed(0)
    dtype = torch.bfloat16 if bf16 and device.startswith("cuda") else torch.float32  # as weights_dtype
    return LlamaModel(config).to(device=device, dtype=dtype).requires_grad_(False)


def layer_step_gflops(bf16: bool, block, x, repeats: int) -> float:
    """GFLOP/s (4 FLOP per linear weight per token: forward and the input's gradient) of ``repeats`` training steps
    of ``block`` (:func:`layer_block`) on the activations ``x``, in fp32 or under bf16 autocast, synchronised."""
    import torch

    device = x.device.type
    weights = sum(m.weight.numel() for m in block.modules() if isinstance(m, torch.nn.Linear))
    flops = 4 * weights * x.shape[0] * x.shape[1] * repeats
    start = time.perf_counter()
    for _ in range(repeats):
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            out = block(inputs_embeds=x).last_hidden_state
        out.float().sum().backward()
        x.grad = None
    if device == "cuda":
        torch.cuda.synchronize()
    return flops / (time.perf_counter() - start) / 1e9


def time_layer_steps(rounds: int, seconds: float, shapes: tuple, device: str) -> dict[str, float]:
    """:func:`layer_step_gflops` of fp32 and of bf16, side by side: alternating, best of ``rounds``, each round at
    least ``seconds`` long; the bf16 block with its weights in the dtype the kit loads them in on ``device``.

    >>> sorted(time_layer_steps(1, 0.01, linear_shapes(32, 64), "cpu"))
    ['bf16', 'fp32']
    """
    import torch

    blocks = {name: layer_block(shapes, name == "bf16", device) for name in ("fp32", "bf16")}
    inputs = {
        name: torch.randn(1, shapes[0][0], shapes[0][1], device=device, dtype=block.dtype, requires_grad=True)
        for name, block in blocks.items()
    }
    for name in blocks:  # warm up: kernels chosen, caches filled
        layer_step_gflops(name == "bf16", blocks[name], inputs[name], 2)
    start = time.perf_counter()
    layer_step_gflops(False, blocks["fp32"], inputs["fp32"], 1)
    repeats = max(2, int(seconds / max(time.perf_counter() - start, 1e-6)))
    best = {"fp32": 0.0, "bf16": 0.0}
    for _ in range(rounds):
        for name in best:
            best[name] = max(best[name], layer_step_gflops(name == "bf16", blocks[name], inputs[name], repeats))
    return {name: float(f"{value:.4g}") for name, value in best.items()}


def time_precisions(
    rounds: int = ROUNDS, seconds: float = SECONDS, shapes: tuple = SHAPES, device: str = "cpu"
) -> dict[str, float]:
    """GFLOP/s of fp32 and of bf16 autocast on ``shapes``, measured side by side: alternating, best of
    ``rounds``, each round at least ``seconds`` long.

    On a CPU the products of the linear layers; on a GPU one training step of a layer of these widths
    (:func:`time_layer_steps`), since there the casts, norms and kernel launches that bf16 adds can cost more than
    its faster products save (SmolLM2-135M trained 1.47x faster in fp32 than in bf16 on an H200, 2026-12-04).

    >>> sorted(time_precisions(rounds=1, seconds=0.01))
    ['bf16', 'fp32']
    """
    import torch

    if device.startswith("cuda"):
        return time_layer_steps(rounds, seconds, shapes, device)
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


def measured_speeds(refresh: bool = False, shapes: tuple = SHAPES, device: str = "cpu") -> dict:
    """The fp32 and bf16 GFLOP/s of this machine's ``device`` on ``shapes`` (:func:`time_precisions`) and the
    ``faster`` one, from the cache when this processor (or GPU), thread count, torch version and shapes were measured
    before (``refresh``: measure again).

    Returns ``{"faster", "gflops": {"fp32", "bf16"}, "shapes", "method", "machine": machine_key(), "measured": ISO time,
    "cache": path}``.
    """
    shapes = [list(shape) for shape in shapes]
    machine = machine_key(device)
    method = GPU_METHOD if device.startswith("cuda") else METHOD
    digest = hashlib.sha256(json.dumps([machine, shapes, method], sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / "precision" / f"{digest}.json"
    if path.is_file() and not refresh:
        try:
            cached = json.loads(path.read_text(encoding="utf-8"))
            if cached.get("machine") == machine and cached.get("shapes") == shapes and cached.get("method") == method:
                return {**cached, "cache": str(path)}
        except (OSError, ValueError):
            pass  # a damaged cache file is measured again and replaced
    gflops = time_precisions(shapes=tuple(tuple(shape) for shape in shapes), device=device)
    record = {
        "faster": "bf16" if gflops["bf16"] > gflops["fp32"] else "fp32",
        "gflops": gflops,
        "shapes": shapes,
        "method": method,
        "machine": machine,
        "measured": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(record, indent=1))
    return {**record, "cache": str(path)}
