"""fairchem trainers that stop on a scheduler's signal at a step boundary and resume exactly.

What fairchem 1.10 does by itself (read from its source, checked by tests/test_preemption_e2e.py):

- a plain run (``fairchem --mode train ...``, one process or ``--num-gpus N`` local ranks)
  installs no signal handler: SIGTERM kills it, and only the last periodic ``checkpoint.pt``
  survives (written every ``optim.checkpoint_every`` steps, by default at each evaluation);
- under ``--submit``, submitit catches SIGUSR2 (sent ``signal_delay_s`` = 90 s before the time
  limit; it bypasses SIGTERM) and calls fairchem's ``Runner.checkpoint``, which saves
  ``checkpoint.pt`` with the training state at whatever point of the step the signal arrived
  and requeues the job with ``checkpoint`` set in its config;
- resuming (``--checkpoint <run>/checkpoint.pt``, or the same ``--run-dir`` and
  ``--timestamp-id``, whose ``checkpoint.pt`` fairchem loads by itself) restores step, epoch,
  optimizer, LR scheduler, EMA, AMP scaler and normalizers, and the sampler skips the batches
  of the epoch already trained.

:class:`PreemptibleForcesTrainer` is fairchem's ``equiformerv2_forces`` trainer (the S2EF
trainer of these configs) with two additions:

1. in a plain run, SIGTERM or SIGUSR1 requests a stop. The step in progress (and a validation
   in progress) finishes; before the next step every rank agrees on the stop (one all-reduce of
   a flag per step when there are several ranks), rank 0 writes ``checkpoint.pt`` with the
   training state after the last finished step, and every rank exits with status
   128 + signal number (143 for SIGTERM, 138 for SIGUSR1): "stopped by a signal, resumable".
   A signal during the last step lets the run end normally. Under submitit no handler is
   installed: submitit's own USR2 path (above) stays in charge.
2. the stop also writes ``rng_state.pt`` beside the checkpoint: every rank's torch RNG state
   at the start of the step that did not run. On resume from that checkpoint each rank restores
   its state right before its first step, so the run continues with the random numbers the
   uninterrupted run would have drawn (EquiformerV2's random edge-frame roll, EST's random grid
   rotation): a resumed run equals the uninterrupted one. fairchem itself re-seeds on resume.
3. every checkpoint (``checkpoint.pt``, ``best_checkpoint.pt``) is written to a temporary file
   and renamed, so a kill during the write leaves the previous checkpoint intact.

Note that fairchem's periodic ``checkpoint.pt`` (at ``checkpoint_every``) is written before the
LR scheduler's step of that step: resuming from it leaves the schedule one step behind. The
stop checkpoint here is written after the whole step, so nothing lags.

Use it by dotted path, in a config (``trainer: est_fairchem.trainers.PreemptibleForcesTrainer``)
or on the command line (``--trainer=est_fairchem.trainers.PreemptibleForcesTrainer``).
fairchem names the task of any dotted-path trainer ``ocp``; this one keeps ``s2ef`` (the task
of ``equiformerv2_forces``: evaluator defaults, ``s2ef_predictions.npz``).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType
from typing import Any

import torch
from fairchem.core.common import distutils
from fairchem.core.models.equiformer_v2.trainers.forces_trainer import EquiformerV2ForcesTrainer
from fairchem.core.trainers import OCPTrainer

from est_fairchem.checkpoints import read_rng_state, write_rng_state
from est_fairchem.trainers.step_budget import StepBudgetMixin

STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGUSR1)
RNG_STATE_FILE = "rng_state.pt"


class TrainingPreempted(SystemExit):
    """Raised on every rank once the stop checkpoint is written; exit status 128 + signal."""

    def __init__(self, signum: int, step: int, checkpoint: str | None) -> None:
        super().__init__(128 + signum)
        self.signum = signum
        self.step = step
        self.checkpoint = checkpoint


class PreemptionMixin:
    """Signal-driven stop at a step boundary, RNG state across the stop, and atomic checkpoint
    writes, for any fairchem trainer whose ``train`` loop calls ``_forward`` once per step with
    the model in train mode (fairchem's ``OCPTrainer`` and its subclasses)."""

    _stop_signum: int | None = None
    _stop_handlers_installed: bool = False
    _pending_rng_state: dict[str, Any] | None = None

    def train(self, disable_eval_tqdm: bool = False) -> None:
        previous = self._install_stop_handlers()
        try:
            super().train(disable_eval_tqdm=disable_eval_tqdm)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self._stop_handlers_installed = False

    def _install_stop_handlers(self) -> dict[int, Any]:
        if os.environ.get("SUBMITIT_EXECUTOR"):
            logging.info("submitit job: preemption left to submitit (USR2: checkpoint, requeue)")
            return {}
        if threading.current_thread() is not threading.main_thread():
            logging.warning("training outside the main thread: no stop-signal handlers installed")
            return {}
        previous = {signum: signal.signal(signum, self._request_stop) for signum in STOP_SIGNALS}
        self._stop_handlers_installed = True
        return previous

    def _request_stop(self, signum: int, frame: FrameType | None) -> None:
        # Only set a flag: the training loop acts on it at the next step boundary.
        if self._stop_signum is None:
            self._stop_signum = signum

    def _forward(self, batch: Any) -> dict[str, torch.Tensor]:
        # fairchem's train loop calls _forward first thing in each step, after setting
        # self.step / self.epoch for that step and model.train(); validation and prediction
        # run the model in eval mode.
        if self.model.training:
            if self._pending_rng_state is not None:
                self._set_rng_state(self._pending_rng_state)
                self._pending_rng_state = None
            if self._stop_handlers_installed:
                self._stop_if_requested()
        return super()._forward(batch)

    def _stop_if_requested(self) -> None:
        signum = self._stop_signum or 0
        if distutils.initialized() and distutils.get_world_size() > 1:
            flag = torch.tensor([signum], dtype=torch.int64, device=self.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            signum = int(flag.item())
        if not signum:
            return
        # The step about to start has not run: record the state after the previous one.
        self.step -= 1
        self.epoch = self.step / len(self.train_loader)
        rng_states = distutils.gather_objects(self._get_rng_state())
        if distutils.is_master() and not self.is_debug:
            write_rng_state(os.path.join(self.config["cmd"]["checkpoint_dir"], RNG_STATE_FILE),
                            self.step, rng_states)
        path = self.save(checkpoint_file="checkpoint.pt", training_state=True)
        distutils.synchronize()
        if distutils.is_master():
            logging.warning(
                f"{signal.Signals(signum).name}: stopped after step {self.step} "
                f"(epoch {self.epoch:.4f}); training state saved to {path}. Resume with the same "
                f"command and --checkpoint {path} (or the same --run-dir and --timestamp-id "
                f"{self.timestamp_id})."
            )
        raise TrainingPreempted(signum, self.step, path)

    def _get_rng_state(self) -> dict[str, Any]:
        cuda = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        return {"torch": torch.get_rng_state(), "cuda": cuda}

    def _set_rng_state(self, state: dict[str, Any]) -> None:
        torch.set_rng_state(state["torch"])
        if state["cuda"] is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda"], self.device)

    def load_checkpoint(
        self, checkpoint_path: str, checkpoint: dict | None = None, inference_only: bool = False,
    ) -> None:
        """fairchem's load; then, if ``rng_state.pt`` beside it was written by a stop at the
        same step with as many ranks, this rank's RNG state is restored before its next step."""
        super().load_checkpoint(checkpoint_path, checkpoint=checkpoint,
                                inference_only=inference_only)
        rng_path = os.path.join(os.path.dirname(checkpoint_path), RNG_STATE_FILE)
        if inference_only or not os.path.isfile(checkpoint_path) or not os.path.isfile(rng_path):
            return
        saved = read_rng_state(rng_path)
        if saved["step"] == self.step and len(saved["states"]) == distutils.get_world_size():
            self._pending_rng_state = saved["states"][distutils.get_rank()]
            logging.info(f"RNG state of step {self.step} from {rng_path}: set at the next step")

    def save(
        self, metrics: Any = None, checkpoint_file: str = "checkpoint.pt",
        training_state: bool = True,
    ) -> str | None:
        """fairchem's save, written to ``.<file>.partial`` and renamed into place."""
        partial = super().save(
            metrics=metrics, checkpoint_file=f".{checkpoint_file}.partial",
            training_state=training_state,
        )
        if partial is None:  # not rank 0, or a debug run
            return None
        final = os.path.join(os.path.dirname(partial), checkpoint_file)
        os.replace(partial, final)
        return final


class PreemptibleOCPTrainer(StepBudgetMixin, PreemptionMixin, OCPTrainer):
    """fairchem's ``ocp`` trainer (task name as fairchem gives it) with :class:`PreemptionMixin`
    and ``optim.max_steps`` (:class:`~est_fairchem.trainers.step_budget.StepBudgetMixin`)."""


class PreemptibleForcesTrainer(StepBudgetMixin, PreemptionMixin, EquiformerV2ForcesTrainer):
    """fairchem's ``equiformerv2_forces`` S2EF trainer with :class:`PreemptionMixin` and
    ``optim.max_steps``.

    Keeps the task name ``s2ef`` where fairchem would name a dotted-path trainer ``ocp``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("name", "ocp") == "ocp":
            kwargs["name"] = "s2ef"
        super().__init__(*args, **kwargs)
