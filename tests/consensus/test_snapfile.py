"""Snapshot files are written atomically, checked on load, and purged to the newest few."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from corral.consensus.snapfile import MAGIC, Snapshot, SnapshotFiles


def names(directory: Path, pattern: str = "*.snap*") -> list[str]:
    return sorted(p.name for p in directory.glob(pattern))


def test_empty_directory_has_no_snapshot(tmp_path: Path) -> None:
    assert SnapshotFiles(tmp_path / "snap").load_newest() is None
    assert (tmp_path / "snap").is_dir()


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    files = SnapshotFiles(tmp_path)
    path = files.save(42, 3, b"state bytes \x00\xff")
    assert path.name == "0000000000000003-000000000000002a.snap"
    assert path.read_bytes().startswith(MAGIC)
    assert names(tmp_path) == [path.name]  # no .tmp left behind
    assert len(names(tmp_path / "chunks", "*")) == 1
    assert SnapshotFiles(tmp_path).load_newest() == Snapshot(42, 3, b"state bytes \x00\xff")


def test_empty_data_round_trips(tmp_path: Path) -> None:
    files = SnapshotFiles(tmp_path)
    files.save(1, 1, b"")
    assert files.load_newest() == Snapshot(1, 1, b"")


def test_newest_is_by_index_not_term_or_order(tmp_path: Path) -> None:
    files = SnapshotFiles(tmp_path, keep=5)
    files.save(20, 2, b"twenty")
    files.save(10, 9, b"ten, higher term")  # saved later, higher term, lower index
    assert files.load_newest() == Snapshot(20, 2, b"twenty")


def test_keep_purges_older_snapshots(tmp_path: Path) -> None:
    files = SnapshotFiles(tmp_path, keep=2)
    for index in (5, 10, 15, 20):
        files.save(index, 1, b"s%d" % index)
    assert names(tmp_path) == [
        "0000000000000001-000000000000000f.snap",
        "0000000000000001-0000000000000014.snap",
    ]
    assert files.load_newest() == Snapshot(20, 1, b"s20")


def test_keep_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        SnapshotFiles(tmp_path, keep=0)


@pytest.mark.parametrize("damage", ["flip_data", "truncate", "bad_magic", "extend", "wrong_index", "empty"])
def test_broken_newest_falls_back_to_older(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    files = SnapshotFiles(tmp_path)
    files.save(10, 1, b"older snapshot")
    newest = files.save(20, 2, b"newer snapshot")
    raw = bytearray(newest.read_bytes())
    if damage == "flip_data":
        raw[-1] ^= 1
    elif damage == "truncate":
        del raw[-4:]
    elif damage == "bad_magic":
        raw[0] ^= 1
    elif damage == "extend":
        raw += b"junk"
    elif damage == "wrong_index":
        raw[8] ^= 1  # header index no longer matches the file name
    else:
        raw.clear()
    newest.write_bytes(bytes(raw))

    caplog.set_level(logging.WARNING, logger="corral.consensus.snapfile")
    assert files.load_newest() == Snapshot(10, 1, b"older snapshot")
    assert not newest.exists()
    assert newest.with_name(newest.name + ".broken").exists()
    assert any("broken" in r.getMessage() for r in caplog.records)
    # The broken file stays set aside; the next load goes straight to the good one.
    assert files.load_newest() == Snapshot(10, 1, b"older snapshot")


def test_all_broken_gives_none(tmp_path: Path) -> None:
    files = SnapshotFiles(tmp_path)
    path = files.save(1, 1, b"x")
    path.write_bytes(b"nope")
    assert files.load_newest() is None
    assert names(tmp_path) == [path.name + ".broken"]


def test_leftover_tmp_files_are_removed_on_load(tmp_path: Path) -> None:
    files = SnapshotFiles(tmp_path)
    files.save(5, 1, b"good")
    tmp = tmp_path / "0000000000000001-0000000000000009.snap.tmp"
    tmp.write_bytes(b"half written")  # a crash between write and rename
    assert files.load_newest() == Snapshot(5, 1, b"good")
    assert not tmp.exists()


def test_broken_files_do_not_count_towards_keep(tmp_path: Path) -> None:
    files = SnapshotFiles(tmp_path, keep=1)
    bad = files.save(1, 1, b"one")
    bad.write_bytes(b"garbage")
    assert files.load_newest() is None
    files.save(2, 1, b"two")
    assert names(tmp_path, "*.snap") == ["0000000000000001-0000000000000002.snap"]
    assert files.load_newest() == Snapshot(2, 1, b"two")


def test_unrelated_files_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "zz.snap").write_bytes(b"not ours")
    files = SnapshotFiles(tmp_path, keep=1)
    files.save(3, 1, b"three")
    assert files.load_newest() == Snapshot(3, 1, b"three")
    assert (tmp_path / "notes.txt").exists() and (tmp_path / "zz.snap").exists()


def test_chunks_already_on_disk_are_not_written_again(tmp_path: Path) -> None:
    files = SnapshotFiles(tmp_path)
    produced: list[str] = []

    def chunk(name: str, data: bytes) -> tuple[str, Callable[[], bytes]]:
        def produce() -> bytes:
            produced.append(name)
            return data

        return name, produce

    files.save_chunks(10, 1, [chunk("head-10", b"h10|"), chunk("hist-1", b"one|")])
    files.save_chunks(20, 1, [chunk("head-20", b"h20|"), chunk("hist-1", b"one|"), chunk("hist-2", b"two|")])
    assert produced == ["head-10", "hist-1", "head-20", "hist-2"]
    assert files.load_newest() == Snapshot(20, 1, b"h20|one|two|")


def test_a_broken_chunk_falls_back_to_an_older_snapshot(tmp_path: Path) -> None:
    files = SnapshotFiles(tmp_path)
    files.save_chunks(10, 1, [("a", lambda: b"A")])
    files.save_chunks(20, 1, [("a", lambda: b"A"), ("b", lambda: b"B")])
    chunk = tmp_path / "chunks" / "b.chunk"
    chunk.write_bytes(chunk.read_bytes()[:-1] + b"X")
    assert files.load_newest() == Snapshot(10, 1, b"A")


def test_chunks_no_kept_snapshot_uses_are_deleted(tmp_path: Path) -> None:
    files = SnapshotFiles(tmp_path, keep=1)
    files.save_chunks(10, 1, [("old", lambda: b"O"), ("shared", lambda: b"S")])
    files.save_chunks(20, 1, [("shared", lambda: b"S"), ("new", lambda: b"N")])
    assert names(tmp_path / "chunks", "*") == ["new.chunk", "shared.chunk"]
