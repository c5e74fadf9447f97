"""HILS Kit: human-inspired learning strategies for fine-tuning LLMs on medical exam questions.

>>> from hils_kit.data.loaders import load_questions
>>> table = load_questions("medmcqa")          # doctest: +SKIP
"""

__version__ = "0.1.0"
