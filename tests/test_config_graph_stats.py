"""Every demo config carries the graph statistics of the data it names (`est-fairchem graph-stats
--check`), made exactly as its header says; a fine-tune carries those of the model it starts from.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from est_fairchem.cli import main
from est_fairchem.tools.graph_stats import graph_statistics, mismatches
from est_fairchem.tools.model_from_config import load_config
from tests.model_utils import REPO


# makes every demo dataset at its default size first (about 30 s): not in make test-fast
pytestmark = pytest.mark.slow


# config -> (make-demo-data task, the data folder the config names, relative to the repository)
DEMO_CONFIGS = {
    "configs/oc20/s2ef/demo/est_eqv2_demo.yml": ("s2ef", "data/demo/s2ef"),
    "configs/oc20/is2re/demo/est_equiformer_demo.yml": ("is2re", "data/demo/is2re"),
    "configs/oc20/is2re/demo/equiformer_demo.yml": ("is2re", "data/demo/is2re"),
    "configs/ase_db/demo/est_eqv2_stress.yml": ("bulk", "data/demo/bulk"),
    "configs/ase_db/demo/eqv2_stress.yml": ("bulk", "data/demo/bulk"),
    "configs/qm9/demo/est_demo.yml": ("qm9", "data/demo/qm9/lmdb"),
    "configs/qm9/demo/est_ga_demo.yml": ("qm9", "data/demo/qm9/lmdb"),
    **{f"configs/ase_db/energy/{name}.yml": ("adsorption", "data/demo/adsorption")
       for name in ("equiformer", "est_equiformer", "eqv2", "est_eqv2")},
}


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory):
    """The demo datasets at their default sizes and seed, as the configs' headers make them."""
    root = tmp_path_factory.mktemp("demo")
    for task in ("s2ef", "is2re", "bulk", "adsorption"):
        assert main(["make-demo-data", "--task", task, "--out", str(root / task)]) == 0
    raw = root / "qm9" / "raw"
    assert main(["make-demo-data", "--task", "qm9", "--out", str(raw)]) == 0
    assert main(["prepare-qm9", "--raw", str(raw), "--out", str(root / "qm9" / "lmdb"),
                 "--subtract-atomrefs", "--exclude", str(raw / "uncharacterized.txt")]) == 0
    return root


def _on_made_data(config: str, folder: str, root: Path, tmp_path: Path) -> Path:
    """``config`` with every dataset path under ``folder`` moved to the made data."""
    made = str(root / Path(folder).relative_to("data/demo"))
    datasets = load_config(REPO / config)["dataset"]
    moved = {split: {"src": str(part["src"]).replace(folder, made)}
             for split, part in datasets.items() if isinstance(part, dict) and "src" in part}
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump({"includes": [str(REPO / config)], "dataset": moved}))
    return path


@pytest.mark.parametrize("config", sorted(DEMO_CONFIGS))
def test_demo_config_states_its_datas_graph_statistics(config, demo_data, tmp_path):
    stats = graph_statistics(_on_made_data(config, DEMO_CONFIGS[config][1], demo_data, tmp_path))
    assert stats.configured, f"{config} sets no graph statistics"
    assert mismatches(stats) == {}, config


def test_the_oxides_fine_tune_keeps_the_statistics_of_the_model_it_starts_from():
    source = load_config(REPO / "configs/ase_db/demo/eqv2_stress.yml")["model"]["backbone"]
    tune = load_config(REPO / "configs/ase_db/demo/est_eqv2_finetune_oxides.yml")
    backbone = tune["model"]["backbone"]
    for key in ("avg_num_nodes", "avg_degree"):
        assert backbone[key] == source[key]
