"""S2EF-All on SLURM without a cluster: fairchem's own ``--submit`` with real submitit.

Stand-in ``sbatch`` and ``srun`` executables on PATH (submitit picks its SLURM executor when
``srun`` exists, and reads the job id from ``sbatch``'s answer) let the README's commands run
unchanged; the batch script submitit writes to the log folder and the job it pickled (what the
compute nodes will run) are then checked against the request.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from est_fairchem.tools.fairchem_runs import fairchem_executable
from tests.model_utils import REPO

CONFIG = "configs/oc20/s2ef/all/est_eqv2_N@8_L@4_M@2_45M.yml"
pytestmark = pytest.mark.e2e

FAKE_SBATCH = """#!/bin/sh
# stand-in sbatch: record the arguments, answer with the next job id as sbatch does
n=$(cat "$FAKE_SLURM/next_id" 2>/dev/null || echo 4242)
echo "$@" >> "$FAKE_SLURM/sbatch_calls"
echo $((n + 1)) > "$FAKE_SLURM/next_id"
echo "Submitted batch job $n"
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A PATH with stand-in sbatch/srun, and a runner of ``fairchem ... --submit``."""
    root = tmp_path_factory.mktemp("slurm")
    bin_dir = root / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(FAKE_SBATCH)
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    for tool in ("sbatch", "srun"):
        (bin_dir / tool).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "FAKE_SLURM": str(root)}

    def submit(*args: str) -> subprocess.CompletedProcess:
        result = subprocess.run([fairchem_executable(), *args], capture_output=True, text=True,
                                env=env, cwd=REPO)
        assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
        return result

    return root, submit


def _sbatch_lines(script: Path) -> set[str]:
    return {line for line in script.read_text().splitlines() if line.startswith("#SBATCH")}


@pytest.fixture(scope="module")
def train_job(cluster):
    root, submit = cluster
    logdir = root / "logs"
    result = submit(
        "--mode", "train", "--config-yml", CONFIG, "--submit", "--num-nodes", "4",
        "--num-gpus", "8", "--slurm-partition", "P", "--slurm-timeout", "48",
        "--slurm-mem", "480", "--logdir", str(logdir), "--run-dir", str(root / "runs"),
        "--identifier", "est45m", "--slurm.requeue=True", "--optim.checkpoint_every=5000",
    )
    return root, logdir, result.stdout + result.stderr


def test_train_batch_script_requests_what_was_asked(train_job):
    root, logdir, output = train_job
    assert "Submitted jobs: 4242" in output
    script = logdir / "4242" / "4242_submission.sh"
    lines = _sbatch_lines(script)
    assert {
        "#SBATCH --nodes=4",
        "#SBATCH --ntasks-per-node=8",  # one task (rank) per GPU: 32 ranks
        "#SBATCH --gpus-per-node=8",
        "#SBATCH --partition=P",
        "#SBATCH --time=2880",  # minutes: --slurm-timeout is in hours
        "#SBATCH --mem=480GB",  # per node
        "#SBATCH --cpus-per-task=9",  # optim.num_workers (8) + 1
        "#SBATCH --job-name=est45m",
        "#SBATCH --signal=USR2@90",  # submitit checkpoints and requeues on it
        "#SBATCH --requeue",  # from --slurm.requeue=True (config key slurm:)
        f"#SBATCH --output={logdir}/%j/%j_0_log.out",
        f"#SBATCH --error={logdir}/%j/%j_0_log.err",
    } <= lines, sorted(lines)
    text = script.read_text()
    # the job runs submitit's entry point with this environment's python, one task per rank
    assert f"srun --unbuffered --output {logdir}/%j/%j_%t_log.out" in text
    entry = f" -u -m submitit.core._submit {logdir}/%j"
    launch = next(line for line in text.splitlines() if line.endswith(entry))
    python = launch[: -len(entry)].split()[-1]  # the interpreter srun starts, maybe via a link
    assert os.path.realpath(python) == os.path.realpath(sys.executable), launch
    calls = (root / "sbatch_calls").read_text().splitlines()
    assert len(calls) == 1 and calls[0].endswith(".sh")  # one sbatch call, one job


def test_train_job_runs_fairchem_runner_with_the_est_config(train_job):
    _, logdir, _ = train_job
    with open(logdir / "4242" / "4242_submitted.pkl", "rb") as f:
        delayed = pickle.load(f)
    from fairchem.core._cli import Runner

    assert isinstance(delayed.function, Runner)
    assert callable(delayed.function.checkpoint)  # submitit requeues checkpointable jobs
    assert delayed._timeout_countdown == 3  # fairchem's slurm_max_num_timeout: 3 requeues
    assert delayed._timeout_min == 48 * 60
    config = delayed.args[0]
    assert config["mode"] == "train" and config["submit"] is True
    assert config["world_size"] == 32
    assert config["model"]["backbone"]["model"] == "est_fairchem.models.EquiformerV2ESTBackbone"
    assert config["model"]["backbone"]["est"] == {"preset": "paper"}  # 90 points at lmax 4
    assert config["dataset"]["train"]["src"] == "data/s2ef/all/train/"
    assert config["optim"]["checkpoint_every"] == 5000
    assert config["slurm"]["folder"] == f"{logdir}/%j"


def test_predict_job_for_a_test_split(cluster, train_job):
    """The README's predict command for one OC20 test split (the four differ only in
    ``--dataset.test.src``)."""
    root, submit = cluster
    logdir = root / "logs"
    checkpoint = root / "runs/checkpoints/est45m-run/best_checkpoint.pt"
    output = submit(
        "--mode", "predict", "--config-yml", CONFIG, "--checkpoint", str(checkpoint),
        "--dataset.test.src=data/s2ef/all/test_ood_both", "--submit", "--num-nodes", "1",
        "--num-gpus", "8", "--slurm-partition", "P", "--slurm-timeout", "4",
        "--logdir", str(logdir), "--run-dir", str(root / "runs"),
        "--identifier", "est45m-test_ood_both",
    )
    job = (output.stdout + output.stderr).split("Submitted jobs: ")[1].split()[0]
    assert job == "4243"
    lines = _sbatch_lines(logdir / job / f"{job}_submission.sh")
    assert {"#SBATCH --nodes=1", "#SBATCH --ntasks-per-node=8", "#SBATCH --gpus-per-node=8",
            "#SBATCH --time=240", "#SBATCH --job-name=est45m-test_ood_both"} <= lines
    with open(logdir / job / f"{job}_submitted.pkl", "rb") as f:
        config = pickle.load(f).args[0]
    assert config["mode"] == "predict" and config["world_size"] == 8
    assert config["checkpoint"] == str(checkpoint)
    assert config["dataset"]["test"]["src"] == "data/s2ef/all/test_ood_both"
    assert config["task"]["prediction_dtype"] == "float32"
