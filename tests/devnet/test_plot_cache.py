"""The pool plot cache's pruning: bounded, but never under a session still using its plots."""

from __future__ import annotations

import os
import time
from pathlib import Path

from pool.devnet.plots import _prune_plot_dirs

HOUR = 3600


def make_folders(root: Path, ages: list[float]) -> list[Path]:
    """One folder per age (seconds since its last use), newest first."""
    folders = []
    now = time.time()
    for index, age in enumerate(ages):
        folder = root / f"plotnft-{index:02d}"
        folder.mkdir()
        os.utime(folder, (now - age, now - age))
        folders.append(folder)
    return folders


def test_the_oldest_folders_beyond_the_bound_are_pruned(tmp_path: Path) -> None:
    folders = make_folders(tmp_path, [2 * HOUR + index for index in range(5)])
    _prune_plot_dirs(tmp_path, keep=folders[0], kept=3)
    assert sorted(tmp_path.iterdir()) == folders[:3]


def test_folders_used_in_the_last_hour_stay_beyond_the_bound(tmp_path: Path) -> None:
    # A run that made many new PlotNFTs: the one it made first is still in use, though more than `kept` came after.
    folders = make_folders(tmp_path, [60, 120, 180, 240, 2 * HOUR, 3 * HOUR])
    _prune_plot_dirs(tmp_path, keep=folders[0], kept=2)
    assert sorted(tmp_path.iterdir()) == folders[:4]


def test_the_folder_just_used_stays_whatever_its_age(tmp_path: Path) -> None:
    folders = make_folders(tmp_path, [2 * HOUR, 3 * HOUR, 4 * HOUR])
    _prune_plot_dirs(tmp_path, keep=folders[2], kept=1)
    assert sorted(tmp_path.iterdir()) == [folders[0], folders[2]]
