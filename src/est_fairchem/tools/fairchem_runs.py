"""Run the real ``fairchem`` command (train / predict) and find what it wrote.

fairchem 1.x writes checkpoints to ``<run-dir>/checkpoints/<timestamp-id>/`` and predictions
to ``<run-dir>/results/<timestamp-id>/<task>_predictions.npz``; a fresh ``--timestamp-id`` per
run keeps two runs from sharing (and silently resuming) a folder.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from est_fairchem.errors import InputError


def fairchem_executable() -> str:
    """The ``fairchem`` console script of this environment."""
    local = Path(sys.executable).with_name("fairchem")
    if local.exists():
        return str(local)
    found = shutil.which("fairchem")
    if found is None:
        raise FileNotFoundError("the 'fairchem' command is not installed in this environment")
    return found


def new_timestamp_id(prefix: str) -> str:
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"


_RUNNING: set[subprocess.Popen] = set()  # fairchem processes started here and not yet ended


def stop_running(timeout: float = 60.0) -> None:
    """SIGTERM to every ``fairchem`` process :func:`run_fairchem` started that still runs (the
    package's trainers then stop at the next step boundary), SIGKILL after ``timeout`` s."""
    for proc in list(_RUNNING):
        proc.terminate()
    for proc in list(_RUNNING):
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()


def run_fairchem(args: list[str], log_file: Path, env: dict[str, str] | None = None) -> None:
    """Run ``fairchem ARGS`` (in environment ``env``, default this process's), teeing its output
    to ``log_file``; raise on failure. Safe to call from several threads at once."""
    command = [fairchem_executable(), *args]
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "w", buffering=1) as log:  # line by line: the log can be followed
        log.write("$ " + " ".join(command) + "\n")
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env=env)
        _RUNNING.add(proc)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
            code = proc.wait()
        finally:
            _RUNNING.discard(proc)
    if code != 0:
        tail = "".join(log_file.read_text().splitlines(keepends=True)[-30:])
        raise RuntimeError(f"fairchem exited with {code}; log: {log_file}\n{tail}")


def train(config: Path, run_dir: Path, timestamp_id: str, extra: list[str] = ()) -> Path:
    """Train with ``--cpu``; return the checkpoint folder."""
    run_fairchem(
        ["--mode", "train", "--config-yml", str(config), "--cpu", "--run-dir", str(run_dir),
         "--timestamp-id", timestamp_id, *extra],
        run_dir / "logs" / f"{timestamp_id}.log",
    )
    checkpoint_dir = run_dir / "checkpoints" / timestamp_id
    if not (checkpoint_dir / "checkpoint.pt").exists():
        raise FileNotFoundError(f"training wrote no checkpoint in {checkpoint_dir}")
    return checkpoint_dir


def predict(
    config: Path, checkpoint: Path, dataset: Path, run_dir: Path, timestamp_id: str,
    extra: list[str] = (), task: str = "s2ef",
) -> Path:
    """Predict ``dataset`` with ``checkpoint``; return the predictions npz."""
    run_fairchem(
        ["--mode", "predict", "--config-yml", str(config), "--cpu", "--run-dir", str(run_dir),
         "--timestamp-id", timestamp_id, "--checkpoint", str(checkpoint),
         f"--dataset.test.src={dataset}", *extra],
        run_dir / "logs" / f"{timestamp_id}.log",
    )
    results = run_dir / "results" / timestamp_id / f"{task}_predictions.npz"
    if not results.exists():
        raise FileNotFoundError(f"prediction wrote no {results.name} in {results.parent}")
    return results


def make_submission(predictions: dict[str, Path], out: Path) -> Path:
    """Join the four OC20 test-split predictions with fairchem's submission script."""
    missing = [s for s in ("id", "ood_ads", "ood_cat", "ood_both") if s not in predictions]
    if missing:
        raise InputError(f"submission needs all four OC20 test splits; missing {missing}")
    command = [sys.executable, "-m", "fairchem.core.scripts.make_submission_file",
               "--out-path", str(out)]
    for split, path in predictions.items():
        command += [f"--{split.replace('_', '-')}", str(path)]
    subprocess.run(command, check=True, capture_output=True, text=True)
    return out


def run_relaxations(
    config: Path, checkpoint: Path, dataset: Path, run_dir: Path, timestamp_id: str,
    extra: list[str] = (),
) -> Path:
    """fairchem's ML relaxations of ``dataset``; return ``relaxed_positions.npz``.

    ``config`` must hold fairchem's relaxation settings (``task.relax_opt`` and ``write_pos``).
    """
    run_fairchem(
        ["--mode", "run-relaxations", "--config-yml", str(config), "--cpu", "--run-dir",
         str(run_dir), "--timestamp-id", timestamp_id, "--checkpoint", str(checkpoint),
         f"--dataset.relax.src={dataset}", *extra],
        run_dir / "logs" / f"{timestamp_id}.log",
    )
    results = run_dir / "results" / timestamp_id / "relaxed_positions.npz"
    if not results.exists():
        raise FileNotFoundError(f"run-relaxations wrote no {results.name} in {results.parent}")
    return results


def logged_steps(log: str) -> list[int]:
    """The training steps fairchem logged (``step: 1.20e+01`` every ``--print-every`` steps)."""
    import re

    return [int(round(float(s))) for s in re.findall(r"\bstep: ([0-9.eE+-]+)", log)]


def run_fairchem_until_step(
    args: list[str], log_file: Path, step: int, signum: int = 15,
    env: dict[str, str] | None = None,
) -> int:
    """Run ``fairchem ARGS`` and send it ``signum`` once it has logged training step ``step``.

    The signal goes to the ``fairchem`` process itself (the rank 0 process of a one-process
    run; the launcher of a ``--num-gpus N`` run, which forwards it to its ranks), as a
    scheduler would. Output is teed to ``log_file``. Returns the exit status; raises if the
    run ended before logging ``step`` (nothing was interrupted).
    """
    command = [fairchem_executable(), *args]
    log_file.parent.mkdir(parents=True, exist_ok=True)
    sent = False
    with open(log_file, "w", buffering=1) as log:  # line by line: the log can be followed
        log.write("$ " + " ".join(command) + "\n")
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env=env)
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            if not sent and any(s >= step for s in logged_steps(line)):
                log.flush()
                proc.send_signal(signum)
                sent = True
        code = proc.wait()
    if not sent:
        raise RuntimeError(f"fairchem ended (status {code}) before logging step {step}; "
                           f"log: {log_file}")
    return code
