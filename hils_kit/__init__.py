"""HILS Kit: human-inspired learning strategies for fine-tuning LLMs on medical exam questions.

>>> from hils_kit.data.loaders import load_questions
>>> table = load_questions("medmcqa")          # doctest: +SKIP
"""

import logging

__version__ = "0.1.0"

# bitsandbytes (imported with peft) warns on every CPU with avx512_bf16 that it could not fetch an optional 4-bit
# kernel from the Hugging Face hub. The kit never downloads at run time, and its 4-bit path runs without that
# kernel, so the warning says nothing to a reader of a notebook or its report.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
