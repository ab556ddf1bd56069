"""``optim.max_steps``: train exactly that many optimizer steps (fairchem 1.10 counts epochs only).

fairchem's ``OCPTrainer.train`` loops over whole epochs (``optim.max_epochs``). A budget in
steps that is not a whole number of epochs (an equal-time comparison: 1,362 steps of 125 per
epoch) cannot be set there. With ``optim.max_steps: N`` the trainers of this package run
``ceil(N / steps per epoch)`` epochs and stop before step N + 1; the last step is validated
(as fairchem validates every ``eval_every`` steps, so the best checkpoint has seen the end of
the run) and ``checkpoint.pt`` holds the state after step N. ``max_epochs`` is then ignored.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from est_fairchem.errors import InputError


class StepBudgetSpent(Exception):
    """Raised at the start of step ``max_steps + 1``; caught by :meth:`StepBudgetMixin.train`."""


class StepBudgetMixin:
    """``optim.max_steps`` for fairchem trainers whose ``train`` loop calls ``_forward`` first
    in every step, in train mode (``OCPTrainer`` and its subclasses)."""

    _max_steps: int | None = None

    def train(self, disable_eval_tqdm: bool = False) -> None:
        max_steps = self.config["optim"].get("max_steps")
        if max_steps is None:
            super().train(disable_eval_tqdm=disable_eval_tqdm)
            return
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
            raise InputError(f"optim.max_steps: {max_steps!r}: expected a positive integer")
        per_epoch = len(self.train_loader)
        self.config["optim"]["max_epochs"] = math.ceil(max_steps / per_epoch)
        self._max_steps = max_steps
        try:
            super().train(disable_eval_tqdm=disable_eval_tqdm)
        except StepBudgetSpent:
            self.step, self.epoch = max_steps, max_steps / per_epoch
            self._validate_last_step(disable_eval_tqdm)
            self.save(checkpoint_file="checkpoint.pt", training_state=True)
        finally:
            self._max_steps = None
        logging.info(f"optim.max_steps: trained {self.step} steps ({self.epoch:.3f} epochs)")

    def _validate_last_step(self, disable_eval_tqdm: bool) -> None:
        eval_every = self.config["optim"].get("eval_every", len(self.train_loader))
        if self.val_loader is None or self.step % eval_every == 0:
            return  # fairchem's loop validated it already
        primary_metric = self.evaluation_metrics.get(
            "primary_metric", self.evaluator.task_primary_metric[self.name])
        metrics = self.validate(split="val", disable_tqdm=disable_eval_tqdm)
        self.update_best(primary_metric, metrics, disable_eval_tqdm=disable_eval_tqdm)

    def _forward(self, batch: Any) -> Any:
        if self._max_steps is not None and self.model.training and self.step > self._max_steps:
            raise StepBudgetSpent
        return super()._forward(batch)
