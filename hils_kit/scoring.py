"""Letter scoring: one forward pass per question, softmax over the option letters only.

Prompts are left-padded into length-sorted batches, with position ids that ignore the padding, and only
the last position's logits are computed. The probability of each letter is the softmax of the logits of
`` A`` … restricted to the question's own letters, which is exactly the paper's rule (lowest loss of
``prompt + letter`` among the options) in one pass instead of one per option.

>>> from hils_kit.models import load_model
>>> from hils_kit.loaders import load_questions
>>> model, tok = load_model("tiny")                                        # doctest: +SKIP
>>> probs = letter_probabilities(model, tok, load_questions("medmcqa").head(8))  # doctest: +SKIP
>>> probs.shape                                                            # doctest: +SKIP
(8, 4)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hils_kit.progress import progress_bar
from hils_kit.prompts import format_prompt, letter_token_ids


def prompts_of(table: pd.DataFrame, template: str = "paper") -> list[str]:
    """The prompt of every row of a question table."""
    return [format_prompt(q, list(o), template) for q, o in zip(table["question"], table["options"])]


def letter_probabilities(model, tokenizer, table: pd.DataFrame, template: str = "paper",
                         batch_size: int = 8, desc: str = "scoring") -> np.ndarray:
    """Probabilities over the option letters, shape ``(len(table), max options)``; NaN past a row's options."""
    import torch

    n_opts = np.array([len(o) for o in table["options"]])
    width = int(n_opts.max())
    letter_ids = torch.tensor(letter_token_ids(tokenizer, width, template))
    encoded = tokenizer(prompts_of(table, template), add_special_tokens=True)["input_ids"]
    order = np.argsort([-len(e) for e in encoded], kind="stable")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device
    logits_out = np.zeros((len(encoded), width), dtype=np.float64)
    with torch.inference_mode(), progress_bar(total=len(encoded), desc=desc) as bar:
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            longest = max(len(encoded[i]) for i in idx)
            ids = torch.full((len(idx), longest), pad_id, dtype=torch.long)
            mask = torch.zeros((len(idx), longest), dtype=torch.long)
            for row, i in enumerate(idx):
                seq = encoded[i]
                ids[row, longest - len(seq):] = torch.tensor(seq)
                mask[row, longest - len(seq):] = 1
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            out = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                        position_ids=positions.to(device), logits_to_keep=1)
            last = out.logits[:, -1, :].float().cpu()
            logits_out[idx] = last[:, letter_ids].double().numpy()
            bar.update(len(idx))
    valid = np.arange(width)[None, :] < n_opts[:, None]
    logits_out = np.where(valid, logits_out, -np.inf)
    logits_out -= logits_out.max(axis=1, keepdims=True)
    probs = np.exp(logits_out)
    probs /= probs.sum(axis=1, keepdims=True)
    return np.where(valid, probs, np.nan)
