"""Which precision the kit computes in, fp32 or bf16 autocast: one rule for training, scoring and labelling.

The first of these that is set decides:

1. an explicit setting: ``--precision``, a study's ``precision:``, ``--set bf16=true|false``, a function's
   ``precision`` argument;
2. the environment variable ``HILS_PRECISION`` (``fp32``, ``bf16`` or ``auto``), so that anyone can reproduce on
   their own CPU what another CPU would do (bf16 is emulated, slowly, where it is not native);
3. ``auto``: whichever is faster on the device at hand, as measured there for the model's own widths (``shapes``:
   :func:`hils_kit.models.shapes.model_shapes`): on a CPU its matrix products, on a GPU one training step of a layer
   (:mod:`hils_kit.core.precision_timing`). A CPU flag says bf16 is there, not that it is fast, and casting to bf16
   does not pay for a small model: not on a CPU, and on an H200 SmolLM2-135M trained 1.47x faster in fp32. A GPU
   without bf16 (``torch.cuda.is_bf16_supported()`` false) computes in fp32.

A setting is one of :data:`PRECISIONS`, or a bool (``bf16=True`` is ``"bf16"``), or ``None`` (not set);
``"auto"`` given explicitly defers to the environment like ``None``.

>>> use_bf16("fp32"), use_bf16(True), resolve_precision(False)
(False, True, 'fp32')
>>> precision_flag("auto") is None, precision_flag("bf16")
(True, True)
"""

from __future__ import annotations

import os
from pathlib import Path

PRECISIONS = ("auto", "fp32", "bf16")
ENV_VAR = "HILS_PRECISION"
HELP = (
    "fp32, or bf16 (autocast); auto (default): the HILS_PRECISION environment variable, else whichever of the two "
    "is faster on this machine (measured once, cached)"
)


def native_bf16(device: str = "cpu") -> bool:
    """True when ``device`` computes in bfloat16 natively (so bf16 autocast speeds it up rather than emulating).

    CUDA: ``torch.cuda.is_bf16_supported()``. CPU: the processor's ``avx512_bf16`` or ``amx_bf16`` flag
    (x86) or ``bf16`` feature (Arm) in ``/proc/cpuinfo``; without them PyTorch emulates bf16, slower than fp32.

    >>> native_bf16("cpu") in (True, False)
    True
    """
    if device.startswith("cuda"):
        import torch

        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    try:
        words = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return False
    return bool(words & {"avx512_bf16", "amx_bf16", "bf16"})


def precision_flag(setting: str | bool | None) -> bool | None:
    """``True`` for bf16, ``False`` for fp32, ``None`` for not set (``None`` or ``"auto"``); other values refused."""
    if setting is None or isinstance(setting, bool):
        return setting
    if setting not in PRECISIONS:
        raise ValueError(f"precision {setting!r}: use one of {', '.join(PRECISIONS)}")
    return None if setting == "auto" else setting == "bf16"


def environment_flag() -> bool | None:
    """``HILS_PRECISION`` as :func:`precision_flag` reads it; unset or empty is ``None``."""
    value = os.environ.get(ENV_VAR, "").strip().lower()
    if value and value not in PRECISIONS:
        raise ValueError(f"{ENV_VAR}={os.environ[ENV_VAR]!r}: use one of {', '.join(PRECISIONS)}")
    return precision_flag(value or None)


def with_precision(settings: dict, precision: str | None) -> dict:
    """Training ``settings`` with ``precision`` ``fp32``/``bf16`` as the setting ``bf16``; ``auto`` or ``None``
    leaves them as they are. Both given is refused.

    >>> with_precision({"lora_r": "8"}, "fp32")
    {'lora_r': '8', 'bf16': False}
    """
    flag = precision_flag(precision)
    if flag is None:
        return settings
    if "bf16" in settings:
        raise ValueError(f"precision {precision!r} and the training setting bf16={settings['bf16']}: give one of them")
    return {**settings, "bf16": flag}


def pinned_precision(setting: str | bool | None = None) -> str:
    """``fp32`` or ``bf16`` when ``setting`` or else ``HILS_PRECISION`` pins one, else ``auto`` (each device's own).

    A study writes this into its notebooks' parameters, so cells that run elsewhere (Ray, SLURM) follow the
    driver's environment.
    """
    for flag in (precision_flag(setting), environment_flag()):
        if flag is not None:
            return "bf16" if flag else "fp32"
    return "auto"


def _speeds(shapes: tuple | None, device: str = "cpu") -> dict:
    from hils_kit.core.precision_timing import SHAPES, measured_speeds

    return measured_speeds(shapes=shapes or SHAPES, device="cuda" if device.startswith("cuda") else "cpu")


def auto_bf16(device: str = "cpu", shapes: tuple | None = None) -> bool:
    """What ``auto`` chooses on ``device``: the faster of the two as measured there on the model's ``shapes``
    (:func:`hils_kit.core.precision_timing.measured_speeds`; default: SmolLM2-135M's); fp32 on a GPU without bf16."""
    if device.startswith("cuda") and not native_bf16(device):
        return False
    return _speeds(shapes, device)["faster"] == "bf16"


def use_bf16(setting: str | bool | None = None, device: str = "cpu", shapes: tuple | None = None) -> bool:
    """Whether to compute under bf16 autocast: the explicit ``setting``, else ``HILS_PRECISION``, else
    :func:`auto_bf16`."""
    pinned = pinned_precision(setting)
    return auto_bf16(device, shapes) if pinned == "auto" else pinned == "bf16"


def resolve_precision(setting: str | bool | None = None, device: str = "cpu", shapes: tuple | None = None) -> str:
    """``"bf16"`` or ``"fp32"``, as :func:`use_bf16` decides."""
    return "bf16" if use_bf16(setting, device, shapes) else "fp32"


def precision_record(setting: str | bool | None = None, device: str = "cpu", shapes: tuple | None = None) -> dict:
    """What a run computed in and why, for its summary: ``precision``, ``decided_by`` (``setting``,
    ``HILS_PRECISION``, ``measured``, or ``gpu`` for a GPU without bf16) and, when measured, the device's ``gflops`` in
    both precisions on the model's ``shapes``.

    >>> precision_record("fp32")
    {'precision': 'fp32', 'decided_by': 'setting'}
    """
    if precision_flag(setting) is not None:
        return {"precision": resolve_precision(setting, device), "decided_by": "setting"}
    if environment_flag() is not None:
        return {"precision": resolve_precision(None, device), "decided_by": ENV_VAR}
    if device.startswith("cuda") and not native_bf16(device):
        return {"precision": "fp32", "decided_by": "gpu"}
    speeds = _speeds(shapes, device)
    return {
        "precision": speeds["faster"],
        "decided_by": "measured",
        "gflops": speeds["gflops"],
        "shapes": speeds["shapes"],
    }
