"""Models: the embedded SmolLM2 and Gemma (GGUF to transformers), local folders and hub ids, the tiny test model,
and merging a LoRA adapter.

May import: core, data.
"""
