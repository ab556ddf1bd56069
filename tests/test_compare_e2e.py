"""`est-fairchem compare` end to end on a small dataset the QM9 study does not use (made EMT
bulk energies in ASE databases): every run through the real `fairchem` command, paired seeds
that draw the data, exact step budgets, the report, and a resume that redoes nothing."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from est_fairchem.data.demo_bulk import BulkSizes, make_bulk_demo

pytestmark = pytest.mark.e2e

TINY_BACKBONE = {
    "use_pbc": True, "regress_forces": False, "otf_graph": True, "max_neighbors": 12,
    "max_radius": 4.0, "max_num_elements": 90, "num_layers": 1, "sphere_channels": 8,
    "attn_hidden_channels": 8, "num_heads": 2, "attn_alpha_channels": 4,
    "attn_value_channels": 4, "ffn_hidden_channels": 8, "lmax_list": [1], "mmax_list": [1],
    "grid_resolution": 8, "edge_channels": 8, "num_distance_basis": 8,
    "avg_num_nodes": 1.0, "avg_degree": 1.0,  # placeholders: the comparison fills them in
}
STEPS = 5  # not a whole number of epochs (8 structures, batch 4: 2 steps per epoch)


def _write(path: Path, config: dict) -> str:
    path.write_text(yaml.safe_dump(config))
    return str(path)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    data = root / "bulk"
    make_bulk_demo(data, seed=0, sizes=BulkSizes(train=16, val=4, test=6))
    a2g = {"r_energy": True, "r_forces": False, "r_stress": False}
    data_config = _write(root / "data.yml", {
        "trainer": "ocp", "logger": "tensorboard",
        "dataset": {
            "train": {"format": "est_fairchem.data.CheckedAseDBDataset",
                      "src": str(data / "train.db"), "a2g_args": a2g,
                      "transforms": {"normalizer": {"fit": {"targets": {"energy": {}},
                                                            "batch_size": 64}}}},
            "val": {"src": str(data / "val.db")}, "test": {"src": str(data / "test.db")}},
        "outputs": {"energy": {"level": "system", "property": "energy"}},
        "loss_functions": [{"energy": {"fn": "mae", "coefficient": 1}}],
        "evaluation_metrics": {"metrics": {"energy": ["mae"]}, "primary_metric": "energy_mae"},
        "task": {"prediction_dtype": "float32"},
    })
    models = {}
    for name, backbone, est in (("eqv2", "equiformer_v2_backbone", None),
                                ("est", "est_fairchem.models.EquiformerV2ESTBackbone", {})):
        section = {"name": "hydra", "otf_graph": True,
                   "backbone": {"model": backbone, **TINY_BACKBONE},
                   "heads": {"energy": {"module": "equiformerV2_scalar_head"}}}
        if est is not None:
            section["backbone"]["est"] = est
        models[name] = _write(root / f"{name}.yml", {"model": section})
    out, work = root / "results", root / "work"
    command = [str(Path(sys.executable).with_name("est-fairchem")), "compare", data_config,
               f"eqv2={models['eqv2']}", f"est={models['est']}", "--seeds", "0", "1",
               "--steps", str(STEPS), "--batch-size", "4", "--train-size", "8",
               "--lrs", "1e-3", "--no-equal-time", "--evaluations", "2", "--out", str(out),
               "--work", str(work), "--unit", "meV", "--scale", "1000"]
    first = subprocess.run(command, capture_output=True, text=True)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    return {"command": command, "out": out, "work": work, "first": first}


def _runs(out: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (out / "runs").glob("*.json")}


def test_every_model_runs_every_seed_for_exactly_its_steps(study):
    runs = _runs(study["out"])
    assert sorted(runs) == ["steps-eqv2-seed0", "steps-eqv2-seed1", "steps-est-seed0",
                            "steps-est-seed1"]
    for run in runs.values():
        assert run["curve"][-1]["step"] == STEPS  # optim.max_steps, validated at the end
        assert run["config"]["optim"]["max_steps"] == STEPS
        # fairchem's evaluator on the test split agrees with the saved per-structure predictions
        assert run["test_from_predictions"]["energy"] == pytest.approx(run["test"], rel=1e-4)
        predictions = study["out"] / run["predictions"]
        assert predictions.exists()


def test_graph_statistics_come_from_the_training_data(study):
    stats = json.loads((study["out"] / "graph_stats.json").read_text())
    (values,) = stats.values()
    assert 1 < values["avg_num_nodes"] < 20 and values["avg_degree"] > 1
    for run in _runs(study["out"]).values():
        backbone = run["config"]["model"]["backbone"]
        assert backbone["avg_degree"] == pytest.approx(values["avg_degree"])
        assert backbone["avg_num_nodes"] == pytest.approx(values["avg_num_nodes"])


def _fitted_mean(log: Path) -> float:
    match = re.search(r"Normalization values for output energy: mean=([-0-9.e]+)",
                      log.read_text())
    assert match, log
    return float(match.group(1))


def test_a_seed_draws_the_same_training_set_for_every_model_and_another_for_each_seed(study):
    mean = {name: _fitted_mean(study["work"] / name / "train.log")
            for name in ("steps-eqv2-seed0", "steps-est-seed0", "steps-eqv2-seed1")}
    assert mean["steps-eqv2-seed0"] == mean["steps-est-seed0"]  # paired: the same 8 structures
    assert mean["steps-eqv2-seed0"] != mean["steps-eqv2-seed1"]  # another draw


def test_the_report_states_costs_and_paired_differences(study):
    out = study["out"]
    cost = json.loads((out / "cost.json").read_text())
    for entry in cost["models"].values():
        assert len(entry["repeats"]) == 5 and entry["seconds_per_step"] > 0
        assert entry["flops_per_structure"] > 0 and entry["parameters"] > 0
    assert cost["models"]["est"]["parameters"] > cost["models"]["eqv2"]["parameters"]
    table = (out / "table.md").read_text()
    assert "| est | eqv2 | 5 | 2 |" in table and "[95 % CI]" in table
    summary = json.loads((out / "summary.json").read_text())
    (row,) = [r for r in summary["comparisons"] if r.get("difference")]
    errors = _runs(out)
    expected = sum(errors[f"steps-est-seed{s}"]["test"] - errors[f"steps-eqv2-seed{s}"]["test"]
                   for s in (0, 1)) / 2 * 1000
    assert row["difference"]["mean"] == pytest.approx(expected)
    boot = row["bootstrap"]  # from the saved per-structure predictions of both models
    assert boot["relative_low"] <= boot["relative_mean"] <= boot["relative_high"]
    assert (out / "error_vs_cost.png").read_bytes()[:4] == b"\x89PNG"


def test_a_rerun_resumes_and_other_settings_are_refused(study):
    out = study["out"]
    before = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*.json")}
    again = subprocess.run(study["command"], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*.json")} == before
    changed = [*study["command"]]
    changed[changed.index("--steps") + 1] = "7"
    refused = subprocess.run(changed, capture_output=True, text=True)
    assert refused.returncode == 2
    assert "study.json: these results were made with other steps" in refused.stderr
    # a rewritten report still names the command that ran the study
    table = out / "table.md"
    table.unlink()
    rewritten = subprocess.run([*study["command"], "--report-only"], capture_output=True,
                               text=True)
    assert rewritten.returncode == 0, rewritten.stderr
    assert table.read_text().splitlines()[0] == f"`est-fairchem {shlex.join(study['command'][1:])}`"


def test_sigterm_stops_the_runs_in_progress_and_nothing_is_left_running(study, tmp_path):
    import signal
    import time

    command = [*study["command"]]
    for flag, value in (("--out", tmp_path / "out"), ("--work", tmp_path / "work"),
                        ("--steps", "400")):
        command[command.index(flag) + 1] = str(value)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not any(
            "step: " in log.read_text() for log in (tmp_path / "work").glob("*/train.log")):
        time.sleep(1)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, output[-2000:]
    left = subprocess.run(["pgrep", "-f", str(tmp_path / "work")], capture_output=True, text=True)
    assert left.stdout.strip() == ""  # no fairchem run outlives the command
    assert not list((tmp_path / "out" / "runs").glob("*.json"))  # no half run counts as done
