"""Prove the training order: record what the model was really fed and compare it with the plan.

:class:`OrderRecorder` hooks the model's forward pass during training, so it sees each micro-batch after
the sampler, the collator and accelerate have done their work. :func:`map_to_rows` turns each recorded
token sequence back into the row of the prepared dataset it came from (identical rows, such as a question
repeated by an ordering, are matched in sequence), and :func:`audit` compares the fed ids with the planned
ones.

>>> audit(["q1", "q2", "q3"], ["q1", "q3", "q2"])["first_mismatch"]
1
>>> audit(["q1", "q2"], ["q1", "q2"])["match"]
True
"""

from __future__ import annotations

from collections import defaultdict

from transformers import TrainerCallback


class OrderAuditError(RuntimeError):
    """The questions fed to the model were not the planned ones in the planned order."""


class OrderRecorder(TrainerCallback):
    """Records the unpadded ``input_ids`` of every training micro-batch (a padding-free row split back into its
    examples by its ``position_ids``), with its optimizer step.

    ``sequences[i]`` is the i-th example the model was fed, ``steps[i]`` the optimizer step (1-based) it
    contributed to and ``micro_batches[i]`` the forward pass (0-based) it was part of.
    """

    def __init__(self):
        self.sequences: list[tuple[int, ...]] = []
        self.steps: list[int] = []
        self.micro_batches: list[int] = []
        self.n_forward = 0
        self._state = None
        self._handle = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._state = state
        self._handle = model.register_forward_pre_hook(self._record, with_kwargs=True)

    def on_train_end(self, args, state, control, **kwargs):
        self.close()

    def close(self) -> None:
        """Remove the hook (also safe after a failed run)."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def _record(self, module, args, kwargs):
        if not module.training:
            return
        input_ids = kwargs["input_ids"] if "input_ids" in kwargs else args[0]
        mask, positions = kwargs.get("attention_mask"), kwargs.get("position_ids")
        for i, row in enumerate(input_ids):
            if mask is not None:
                examples = [row[mask[i].bool()]]
            elif positions is not None:  # a padding-free row: an example starts wherever the position is 0
                restarts = (positions[i][1:] == 0).nonzero().flatten() + 1
                bounds = [0, *restarts.tolist(), len(row)]
                examples = [row[a:b] for a, b in zip(bounds, bounds[1:])]
            else:
                examples = [row]
            for example in examples:
                self.sequences.append(tuple(example.tolist()))
                self.steps.append(self._state.global_step + 1)
                self.micro_batches.append(self.n_forward)
        self.n_forward += 1

    @property
    def n_tokens(self) -> int:
        """Real (unpadded) tokens fed to the model."""
        return sum(len(s) for s in self.sequences)


def map_to_rows(sequences: list, dataset_input_ids: list) -> list[int | None]:
    """The dataset row of each fed sequence (``None`` when it matches no row, e.g. a row packed across questions).

    Rows with identical tokens are handed out in dataset order, cycling for further epochs, so a question
    that appears twice maps to its first position, then its second.
    """
    rows_of = defaultdict(list)
    for row, ids in enumerate(dataset_input_ids):
        rows_of[tuple(ids)].append(row)
    seen = defaultdict(int)
    mapped = []
    for seq in sequences:
        key = tuple(seq)
        candidates = rows_of.get(key)
        if not candidates:
            mapped.append(None)
            continue
        mapped.append(candidates[seen[key] % len(candidates)])
        seen[key] += 1
    return mapped


def audit(planned_ids: list, fed_ids: list) -> dict:
    """Compare the planned id sequence with the fed one.

    Returns ``match``, ``n_planned``, ``n_fed``, ``first_mismatch`` (position, or ``None``), the ids at
    that position (``planned_at``, ``fed_at``) and ``n_same_position`` (positions that agree).
    """
    planned, fed = [str(i) for i in planned_ids], [None if i is None else str(i) for i in fed_ids]
    first = next((k for k, (p, f) in enumerate(zip(planned, fed)) if p != f), None)
    if first is None and len(planned) != len(fed):
        first = min(len(planned), len(fed))
    return {
        "match": first is None,
        "n_planned": len(planned),
        "n_fed": len(fed),
        "first_mismatch": first,
        "planned_at": planned[first] if first is not None and first < len(planned) else None,
        "fed_at": fed[first] if first is not None and first < len(fed) else None,
        "n_same_position": sum(p == f for p, f in zip(planned, fed)),
    }
