"""The WAL round-trips entries, state and marks, and survives torn tails but not silent corruption."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import pytest
from corral.consensus.wal import WAL, Entry, HardState, SnapshotMark, WalContents, WalCorruptError


def entries(first: int, last: int, term: int = 1, tag: str = "") -> list[Entry]:
    return [Entry(i, term, f"{tag}cmd-{i}".encode()) for i in range(first, last + 1)]


def reopen(directory: Path, segment_bytes: int = 64 << 20) -> WalContents:
    wal, contents = WAL.open(directory, segment_bytes)
    wal.close()
    return contents


def segment_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.wal"))


def test_empty_directory_is_created_and_empty(tmp_path: Path) -> None:
    directory = tmp_path / "wal" / "nested"
    contents = reopen(directory)
    assert contents == WalContents([], HardState(), None, 0)
    assert [p.name for p in segment_files(directory)] == ["0000000000000000-0000000000000001.wal"]


def test_round_trip_entries_state_and_mark(tmp_path: Path) -> None:
    wal, _ = WAL.open(tmp_path)
    wal.append_entries(entries(1, 5))
    wal.save_state(HardState(term=1, vote=2, commit=3))
    wal.append_entries([Entry(6, 2, b""), Entry(7, 2, b"\x00" * 1000)])
    wal.save_state(HardState(term=2, vote=3, commit=6))
    wal.sync()
    wal.close()

    contents = reopen(tmp_path)
    assert contents.entries == [*entries(1, 5), Entry(6, 2, b""), Entry(7, 2, b"\x00" * 1000)]
    assert contents.state == HardState(term=2, vote=3, commit=6)
    assert contents.snapshot is None
    assert contents.truncated_bytes == 0


def test_appends_continue_after_reopen(tmp_path: Path) -> None:
    wal, _ = WAL.open(tmp_path)
    wal.append_entries(entries(1, 3))
    wal.close()
    wal, contents = WAL.open(tmp_path)
    assert wal.last_index == 3
    wal.append_entries(entries(4, 6))
    with pytest.raises(ValueError):
        wal.append_entries(entries(8, 9))  # gap
    wal.close()
    assert reopen(tmp_path).entries == entries(1, 6)


def test_snapshot_mark_drops_covered_entries(tmp_path: Path) -> None:
    wal, _ = WAL.open(tmp_path)
    wal.append_entries(entries(1, 10))
    wal.mark_snapshot(7, 1)
    wal.append_entries(entries(11, 12))
    wal.close()
    contents = reopen(tmp_path)
    assert contents.snapshot == SnapshotMark(7, 1)
    assert contents.entries == entries(8, 12)


def test_snapshot_mark_beyond_log_then_append(tmp_path: Path) -> None:
    """A follower installing a leader's snapshot jumps past its own log."""
    wal, _ = WAL.open(tmp_path)
    wal.append_entries(entries(1, 3))
    wal.mark_snapshot(100, 4)
    with pytest.raises(ValueError):
        wal.append_entries(entries(99, 101))  # below the snapshot
    wal.append_entries(entries(101, 102, term=4))
    wal.close()
    contents = reopen(tmp_path)
    assert contents.snapshot == SnapshotMark(100, 4)
    assert contents.entries == entries(101, 102, term=4)


def test_overwrite_replaces_suffix(tmp_path: Path) -> None:
    wal, _ = WAL.open(tmp_path)
    wal.append_entries(entries(1, 10))
    new = [Entry(5, 2, b"five'"), Entry(6, 2, b"six'")]
    wal.append_entries(new)
    wal.close()
    assert reopen(tmp_path).entries == [*entries(1, 4), *new]


def test_overwrite_across_segments(tmp_path: Path) -> None:
    wal, _ = WAL.open(tmp_path)
    wal.append_entries(entries(1, 10))
    wal.cut()
    wal.append_entries(entries(11, 12))
    wal.append_entries(entries(3, 4, term=2, tag="new"))
    wal.close()
    assert reopen(tmp_path).entries == [*entries(1, 2), *entries(3, 4, term=2, tag="new")]


def test_gap_between_segments_is_corruption(tmp_path: Path) -> None:
    wal, _ = WAL.open(tmp_path)
    wal.append_entries(entries(1, 3))
    wal.cut()
    wal.append_entries(entries(4, 6))
    wal.cut()
    wal.append_entries(entries(7, 9))
    wal.close()
    # Splice: drop segment 1's content so entry 7 follows entry 3.
    segment_files(tmp_path)[1].write_bytes(b"")
    with pytest.raises(WalCorruptError, match="gap"):
        WAL.open(tmp_path)


def test_missing_middle_segment_is_corruption(tmp_path: Path) -> None:
    wal, _ = WAL.open(tmp_path)
    for first in (1, 4, 7):
        wal.append_entries(entries(first, first + 2))
        wal.cut()
    wal.close()
    segment_files(tmp_path)[1].unlink()
    with pytest.raises(WalCorruptError, match="missing segment"):
        WAL.open(tmp_path)


def test_segments_cut_by_size_and_names(tmp_path: Path) -> None:
    wal, _ = WAL.open(tmp_path, segment_bytes=1000)
    for i in range(1, 101):
        wal.append_entries([Entry(i, 1, b"x" * 50)])  # ~83 bytes per record
    size = wal.size_bytes
    wal.close()
    files = segment_files(tmp_path)
    assert len(files) >= 8
    assert size == sum(p.stat().st_size for p in files)
    firsts = [int(p.name.split("-")[1].removesuffix(".wal"), 16) for p in files]
    seqs = [int(p.name.split("-")[0], 16) for p in files]
    assert seqs == list(range(len(files)))
    assert firsts == sorted(firsts) and firsts[0] == 1
    for p in files[:-1]:
        assert p.stat().st_size > 1000
        assert p.stat().st_size < 1000 + 100
    contents = reopen(tmp_path, segment_bytes=1000)
    assert [e.index for e in contents.entries] == list(range(1, 101))


def test_size_cut_after_state_and_mark_carries_the_new_values(tmp_path: Path) -> None:
    """A record that fills a segment must be reflected in the next segment's name and header."""
    wal, _ = WAL.open(tmp_path, segment_bytes=1)
    wal.append_entries(entries(1, 3))  # cut: segment 1 starts at 4
    wal.save_state(HardState(term=2, vote=1, commit=3))  # cut: segment 2 repeats this state
    wal.mark_snapshot(3, 1)  # cut: segment 3 repeats state and mark
    wal.release_to(3)
    assert [p.name for p in segment_files(tmp_path)] == ["0000000000000003-0000000000000004.wal"]
    wal.close()
    contents = reopen(tmp_path, segment_bytes=1)
    assert contents.state == HardState(term=2, vote=1, commit=3)
    assert contents.snapshot == SnapshotMark(3, 1)
    assert contents.entries == []


def test_explicit_cut_and_release_to(tmp_path: Path) -> None:
    wal, _ = WAL.open(tmp_path)
    wal.save_state(HardState(term=3, vote=1, commit=0))
    wal.append_entries(entries(1, 10))  # segment 0
    wal.cut()
    wal.append_entries(entries(11, 20))  # segment 1, first_index 11
    wal.cut()
    wal.append_entries(entries(21, 25))  # segment 2 (current), first_index 21
    assert [p.name[-21:-4] for p in segment_files(tmp_path)] == [
        "-0000000000000001",
        "-000000000000000b",
        "-0000000000000015",
    ]
    before = wal.size_bytes

    wal.mark_snapshot(10, 1)
    wal.release_to(9)  # segment 0 still holds entry 10
    assert len(segment_files(tmp_path)) == 3
    wal.release_to(10)
    assert len(segment_files(tmp_path)) == 2
    assert wal.size_bytes < before

    wal.save_state(HardState(term=3, vote=1, commit=25))
    wal.mark_snapshot(25, 3)
    wal.release_to(25)  # everything but the current segment may go
    wal.release_to(1000)
    assert [p.name for p in segment_files(tmp_path)] == ["0000000000000002-0000000000000015.wal"]
    wal.append_entries(entries(26, 27, term=3))
    wal.close()

    contents = reopen(tmp_path)
    assert contents.snapshot == SnapshotMark(25, 3)
    assert contents.state == HardState(term=3, vote=1, commit=25)
    assert contents.entries == entries(26, 27, term=3)


def test_state_and_mark_survive_release_of_their_segment(tmp_path: Path) -> None:
    """New segments repeat the hard state and mark, so releasing old ones loses neither."""
    wal, _ = WAL.open(tmp_path)
    wal.save_state(HardState(term=7, vote=2, commit=5))
    wal.append_entries(entries(1, 5, term=7))
    wal.mark_snapshot(5, 7)
    wal.cut()
    wal.cut()  # segment 2 starts at 6 too, repeating state and mark
    wal.append_entries(entries(6, 8, term=7))
    wal.release_to(5)
    assert len(segment_files(tmp_path)) == 1
    wal.close()
    contents = reopen(tmp_path)
    assert contents.state == HardState(term=7, vote=2, commit=5)
    assert contents.snapshot == SnapshotMark(5, 7)
    assert contents.entries == entries(6, 8, term=7)


def test_surviving_segment_may_start_past_its_repeated_mark(tmp_path: Path) -> None:
    """Segment 1 repeats mark 5 but holds entries from 9; the later mark at 10 lets segment 0 go."""
    wal, _ = WAL.open(tmp_path)
    wal.append_entries(entries(1, 5))
    wal.mark_snapshot(5, 1)
    wal.append_entries(entries(6, 8))
    wal.cut()
    wal.append_entries(entries(9, 12))
    wal.mark_snapshot(10, 1)
    wal.release_to(10)
    assert [p.name for p in segment_files(tmp_path)] == ["0000000000000001-0000000000000009.wal"]
    wal.append_entries(entries(13, 13))
    wal.close()
    contents = reopen(tmp_path)
    assert contents.snapshot == SnapshotMark(10, 1)
    assert contents.entries == entries(11, 13)


def test_release_is_capped_at_the_newest_mark(tmp_path: Path) -> None:
    wal, _ = WAL.open(tmp_path)
    wal.append_entries(entries(1, 4))
    wal.cut()
    wal.append_entries(entries(5, 8))
    wal.cut()
    wal.release_to(100)  # no snapshot mark: nothing is covered, nothing goes
    assert len(segment_files(tmp_path)) == 3
    wal.mark_snapshot(4, 1)
    wal.release_to(100)  # capped at 4: only segment 0 goes
    assert len(segment_files(tmp_path)) == 2
    wal.close()
    contents = reopen(tmp_path)
    assert contents.snapshot == SnapshotMark(4, 1)
    assert contents.entries == entries(5, 8)


def _build_for_tail(directory: Path) -> tuple[int, int, WalContents]:
    """A log whose last record is an entry; returns (start, end) of that record in the last segment."""
    wal, _ = WAL.open(directory)
    wal.append_entries(entries(1, 3))
    wal.cut()
    wal.save_state(HardState(term=1, vote=1, commit=2))
    wal.append_entries(entries(4, 5))
    start = segment_files(directory)[-1].stat().st_size
    wal.append_entries([Entry(6, 1, b"the last record")])
    wal.close()
    end = segment_files(directory)[-1].stat().st_size
    expected = WalContents(entries(1, 5), HardState(term=1, vote=1, commit=2), None, 0)
    return start, end, expected


def test_torn_tail_at_every_offset_of_last_record(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pristine = tmp_path / "pristine"
    start, end, expected = _build_for_tail(pristine)
    assert end - start > 8 + 17
    last_name = segment_files(pristine)[-1].name
    caplog.set_level(logging.WARNING, logger="corral.consensus.wal")
    for cut_at in range(start, end):
        directory = tmp_path / f"cut-{cut_at}"
        shutil.copytree(pristine, directory)
        last = directory / last_name
        with last.open("r+b") as f:
            f.truncate(cut_at)
        caplog.clear()

        wal, contents = WAL.open(directory)
        assert contents.entries == expected.entries, cut_at
        assert contents.state == expected.state
        assert contents.truncated_bytes == cut_at - start
        assert last.stat().st_size == start
        assert bool(caplog.records) == (cut_at > start)

        wal.append_entries([Entry(6, 2, b"rewritten"), Entry(7, 2, b"more")])
        wal.sync()
        wal.close()
        again = reopen(directory)
        assert again.entries == [*expected.entries, Entry(6, 2, b"rewritten"), Entry(7, 2, b"more")]
        assert again.truncated_bytes == 0


@pytest.mark.parametrize("garbage", [b"\x00" * 64, b"\xff" * 3, b"\x07\x00\x00\x00\x00\x00\x00\x00"])
def test_garbage_after_last_record_is_cut(tmp_path: Path, garbage: bytes) -> None:
    start, end, expected = _build_for_tail(tmp_path)
    last = segment_files(tmp_path)[-1]
    with last.open("ab") as f:
        f.write(garbage)
    contents = reopen(tmp_path)
    assert contents.entries == [*expected.entries, Entry(6, 1, b"the last record")]
    assert contents.truncated_bytes == len(garbage)
    assert last.stat().st_size == end


def test_flipped_byte_in_last_record_truncates(tmp_path: Path) -> None:
    pristine = tmp_path / "pristine"
    start, end, expected = _build_for_tail(pristine)
    last_name = segment_files(pristine)[-1].name
    for pos in range(start, end):
        directory = tmp_path / f"flip-{pos}"
        shutil.copytree(pristine, directory)
        last = directory / last_name
        raw = bytearray(last.read_bytes())
        raw[pos] ^= 0x40
        last.write_bytes(bytes(raw))
        contents = reopen(directory)
        assert contents.entries == expected.entries, pos
        assert contents.truncated_bytes == end - start
        assert last.stat().st_size == start


def test_corruption_mid_last_segment_drops_everything_after(tmp_path: Path) -> None:
    wal, _ = WAL.open(tmp_path)
    wal.append_entries(entries(1, 2))
    offset = wal.size_bytes
    wal.append_entries(entries(3, 6))
    wal.close()
    last = segment_files(tmp_path)[-1]
    raw = bytearray(last.read_bytes())
    raw[offset + 12] ^= 1  # inside entry 3's body
    last.write_bytes(bytes(raw))
    contents = reopen(tmp_path)
    assert contents.entries == entries(1, 2)
    assert last.stat().st_size == offset


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damage_in_non_last_segment_refuses_to_start(tmp_path: Path, damage: str) -> None:
    wal, _ = WAL.open(tmp_path)
    wal.append_entries(entries(1, 5))
    wal.cut()
    wal.append_entries(entries(6, 8))
    wal.close()
    first = segment_files(tmp_path)[0]
    raw = bytearray(first.read_bytes())
    if damage == "flip":
        raw[-3] ^= 0xFF
    else:
        del raw[-3:]
    first.write_bytes(bytes(raw))
    size = first.stat().st_size
    with pytest.raises(WalCorruptError, match="not the last"):
        WAL.open(tmp_path)
    assert first.stat().st_size == size  # nothing repaired behind our back


def test_valid_crc_with_unknown_kind_is_corruption(tmp_path: Path) -> None:
    import struct
    import zlib

    wal, _ = WAL.open(tmp_path)
    wal.append_entries(entries(1, 1))
    wal.close()
    body = b"\x09payload"
    with segment_files(tmp_path)[-1].open("ab") as f:
        f.write(struct.pack("<II", len(body), zlib.crc32(body)) + body)
    with pytest.raises(WalCorruptError, match="kind"):
        WAL.open(tmp_path)


def test_closed_wal_refuses_writes(tmp_path: Path) -> None:
    wal, _ = WAL.open(tmp_path)
    wal.close()
    wal.close()  # idempotent
    with pytest.raises(RuntimeError):
        wal.append_entries(entries(1, 1))


def test_batch_append_is_cheap(tmp_path: Path) -> None:
    wal, _ = WAL.open(tmp_path)
    batch = [Entry(i, 1, b"put /k%d v" % i) for i in range(1, 10_001)]
    began = time.perf_counter()
    wal.append_entries(batch)
    wal.sync()
    elapsed = time.perf_counter() - began
    wal.close()
    assert elapsed < 0.5, elapsed  # typically ~10 ms
    began = time.perf_counter()
    contents = reopen(tmp_path)
    assert time.perf_counter() - began < 1.0
    assert contents.entries == batch
