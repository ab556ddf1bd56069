"""Output folders of `prepare-qm9` / `make-demo-data`: a user's input is never deleted, a
stopped run leaves nothing behind (and the next run removes what a killed one left), and the
folder is readable as the umask says."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from est_fairchem.data.output_folder import (
    LOCK_NAME,
    atomic_output_dir,
    check_output_folder,
    remove_stale_partials,
)
from est_fairchem.errors import InputError
from tests.model_utils import est_fairchem_cli


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def _prepare(raw: Path, out: Path, *extra: str, cwd: Path | None = None):
    return subprocess.run([*est_fairchem_cli(), "prepare-qm9", "--raw", str(raw), "--out", str(out),
                           *extra], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("where", ["same", "parent", "symlink"])
def test_out_equal_to_or_above_the_release_is_refused_and_the_release_kept(raw_dir, where,
                                                                           tmp_path):
    before = _snapshot(raw_dir)
    out = {"same": raw_dir, "parent": raw_dir.parent, "symlink": tmp_path / "link"}[where]
    if where == "symlink":
        out.symlink_to(raw_dir, target_is_directory=True)
    result = _prepare(raw_dir, out, "--overwrite")
    assert result.returncode == 2, result.stderr
    assert "would delete the input" in result.stderr and "Traceback" not in result.stderr
    assert _snapshot(raw_dir) == before
    assert not [p for p in raw_dir.parent.iterdir() if ".partial-" in p.name]


def test_out_containing_the_exclusion_list_is_refused(raw_dir, tmp_path):
    elsewhere = tmp_path / "lists"
    elsewhere.mkdir()
    exclude = elsewhere / "uncharacterized.txt"
    exclude.write_bytes((raw_dir / "uncharacterized.txt").read_bytes())
    result = _prepare(raw_dir, elsewhere, "--exclude", str(exclude), "--overwrite")
    assert result.returncode == 2 and f"contains the input {exclude}" in result.stderr
    assert exclude.read_bytes() == (raw_dir / "uncharacterized.txt").read_bytes()


@pytest.mark.parametrize("command", ["prepare-qm9", "make-demo-data"])
def test_out_that_is_a_file_is_one_line(raw_dir, tmp_path, command):
    target = tmp_path / "notes.txt"
    target.write_text("keep me\n")
    args = (["--raw", str(raw_dir)] if command == "prepare-qm9" else ["--task", "qm9"])
    result = subprocess.run([*est_fairchem_cli(), command, *args, "--out", str(target),
                             "--overwrite"], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (f"est-fairchem {command}: --out {target}: is an existing "
                                     "file; expected a folder to create")
    assert target.read_text() == "keep me\n"


def test_overwrite_replaces_only_a_folder_the_command_made(raw_dir, tmp_path):
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "chapter1.tex").write_text("years of work\n")
    result = _prepare(raw_dir, mine, "--overwrite")
    assert result.returncode == 2 and "did not write (no metadata.json)" in result.stderr
    assert (mine / "chapter1.tex").read_text() == "years of work\n"
    made = tmp_path / "lmdb"
    assert _prepare(raw_dir, made).returncode == 0
    again = _prepare(raw_dir, made, "--overwrite", "--seed", "2")
    assert again.returncode == 0, again.stderr
    assert '"seed": 2' in (made / "metadata.json").read_text()


def test_out_dot_writes_into_the_current_folder_and_keeps_it(raw_dir, tmp_path):
    here = tmp_path / "empty_here"
    here.mkdir()
    inode = here.stat().st_ino
    result = _prepare(raw_dir, Path("."), cwd=here)
    assert result.returncode == 0, result.stderr
    assert (here / "train" / "data.lmdb").is_file() and (here / "metadata.json").is_file()
    assert here.stat().st_ino == inode  # the shell's folder is still the one it is in
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]
    assert not (here / LOCK_NAME).exists()
    refused = _prepare(raw_dir, Path("."), "--overwrite", cwd=here)
    assert refused.returncode == 2 and "the folder this command runs in" in refused.stderr


@pytest.mark.parametrize("umask,mode", [(0o022, 0o755), (0o027, 0o750)])
def test_output_folder_mode_follows_the_umask(raw_dir, tmp_path, umask, mode):
    out = tmp_path / "shared_lmdb"
    result = subprocess.run(
        ["sh", "-c", f'umask {umask:03o} && exec "$@"', "sh", *est_fairchem_cli(), "prepare-qm9",
         "--raw", str(raw_dir), "--out", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == mode
    assert stat.S_IMODE((out / "train").stat().st_mode) == mode


def _large_release(raw_dir: Path, folder: Path, copies: int) -> Path:
    """``copies`` records made from the 12 demo ones under new indices (a conversion that
    takes seconds, long enough to be stopped halfway)."""
    folder.mkdir()
    records = sorted(raw_dir.glob("dsgdb9nsd_*.xyz"))
    for index in range(1, copies + 1):
        text = records[index % len(records)].read_text()
        text = re.sub(r"^gdb \d+", f"gdb {index}", text, count=1, flags=re.M)
        (folder / f"dsgdb9nsd_{index:06d}.xyz").write_text(text)
    return folder


def _ignore_sigint() -> None:
    """What a shell without job control does to a background command (`make test &`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _start_and_wait_for_partial(raw: Path, out: Path,
                                sigint_ignored: bool = False) -> subprocess.Popen:
    process = subprocess.Popen([*est_fairchem_cli(), "prepare-qm9", "--raw", str(raw),
                                "--out", str(out)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=_ignore_sigint if sigint_ignored else None)
    deadline = time.monotonic() + 120
    while not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.partial-")]:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return process


@pytest.mark.parametrize("signum,sigint_ignored", [(signal.SIGTERM, False),
                                                   (signal.SIGINT, False),
                                                   (signal.SIGINT, True)],
                         ids=["SIGTERM", "SIGINT", "SIGINT-started-in-background"])
def test_a_signal_halfway_leaves_nothing_and_says_so_in_one_line(raw_dir, tmp_path, signum,
                                                                 sigint_ignored):
    """Also when the command inherited SIGINT ignored (a background job of a shell without job
    control, as under `make test &`): Python keeps an inherited SIG_IGN, so the signal was
    lost and the run wrote its output with exit 0."""
    raw = _large_release(raw_dir, tmp_path / "big", 6000)
    out = tmp_path / "lmdb"
    process = _start_and_wait_for_partial(raw, out, sigint_ignored)
    time.sleep(0.5)  # into the reading or writing
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("est-fairchem prepare-qm9: interrupted by SIG")
    assert last.endswith(f"nothing was written to {out}")
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big"]


def test_a_signal_during_the_final_renames_comes_after_them_and_says_the_output_is_whole(
        raw_dir, tmp_path, monkeypatch, capsys):
    """SIGINT sent to the process while the partial folder is being renamed into place: it is
    held back until the renames are done, so the output is complete, and the one line says so
    (it used to say that nothing was written)."""
    from est_fairchem.cli import main
    from est_fairchem.data import output_folder

    commit = output_folder._commit

    def commit_with_a_signal(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # pending: the renames hold it back
        commit(*args, **kwargs)

    monkeypatch.setattr(output_folder, "_commit", commit_with_a_signal)
    out = tmp_path / "lmdb"
    assert main(["prepare-qm9", "--raw", str(raw_dir), "--out", str(out)]) == 128 + signal.SIGINT
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == (f"est-fairchem prepare-qm9: interrupted by SIGINT (Ctrl-C); {out} had been "
                    "written in full")
    assert (out / "metadata.json").is_file() and (out / "train" / "data.lmdb").is_file()
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


def test_the_next_run_removes_what_a_killed_run_left(raw_dir, tmp_path):
    raw = _large_release(raw_dir, tmp_path / "big", 3000)
    out = tmp_path / "lmdb"
    process = _start_and_wait_for_partial(raw, out)
    process.kill()  # SIGKILL: no cleanup possible
    process.communicate()
    left = [p for p in tmp_path.iterdir() if ".partial-" in p.name]
    assert len(left) == 1
    result = _prepare(raw, out)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big", "lmdb"]


def test_a_live_runs_partial_folder_is_not_removed(tmp_path):
    out = tmp_path / "data"
    with atomic_output_dir(out) as partial:
        (partial / "half.bin").write_bytes(b"x")
        assert remove_stale_partials(out) == []  # we hold its lock
        assert (partial / "half.bin").exists()
    assert (out / "half.bin").exists() and not partial.exists()


def test_a_replacement_cut_between_its_renames_is_undone(tmp_path):
    """A run killed after moving the old ``out`` aside but before moving the new one in: the
    next run puts the user's folder back."""
    out = tmp_path / "data"
    aside = tmp_path / ".data.old-999999999"  # no such process
    aside.mkdir()
    (aside / "metadata.json").write_text("{}")
    remove_stale_partials(out)
    assert (out / "metadata.json").exists() and not aside.exists()


def test_refusals_happen_before_any_work(tmp_path):
    with pytest.raises(InputError, match="root"):
        check_output_folder(Path("/"))
    source = tmp_path / "in" / "release.tar.bz2"
    source.parent.mkdir()
    source.write_bytes(b"")
    with pytest.raises(InputError, match="contains the input"):
        with atomic_output_dir(tmp_path / "in", overwrite=True, protect=[source]):
            raise AssertionError("must not start")
