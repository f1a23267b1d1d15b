"""MemoDB: round trip, damaged records and torn tails, one writer and concurrent readers."""

import multiprocessing
import os
import re
import time
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from algorithms.memo_db import HEADER_SIZE, MemoDB, MemoDBLockedError, MemoDBWarning

KEY_DIM, MAP_SHAPE = 4, (2, 3)


def _key(i):
    return np.arange(KEY_DIM, dtype=np.float32) + i


def _map(i):
    return np.full(MAP_SHAPE, i / 7, np.float32) + np.arange(6, dtype=np.float32).reshape(2, 3)


def _fill(path, n, **kw):
    with MemoDB(path, KEY_DIM, MAP_SHAPE, durable=False, **kw) as db:
        for i in range(n):
            assert db.append(_key(i), _map(i)) == i
        return db.record_dtype.itemsize


def _assert_records(db, expected_ids):
    """``db`` holds exactly the records written as ``expected_ids``, in order."""
    assert len(db) == len(expected_ids)
    assert np.array_equal(db.keys()[:, 0], np.asarray(expected_ids, np.float32))
    for i, written in enumerate(expected_ids):
        assert torch.equal(db.get_map(i), torch.from_numpy(_map(written)))


def _flip_bit(path, slot, stride, byte, bit=0):
    with open(path, "r+b") as f:
        f.seek(HEADER_SIZE + slot * stride + byte)
        value = f.read(1)[0]
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([value ^ (1 << bit)]))


def _open_quiet(path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MemoDBWarning)
        return MemoDB(path, KEY_DIM, MAP_SHAPE, **kw)


def test_memo_db_round_trip_and_reopen(tmp_path):
    path = tmp_path / "memo.db"
    db = MemoDB(path, key_dim=4, map_shape=(2, 3, 3))
    maps = torch.rand(3, 2, 3, 3)
    for i in range(3):
        assert db.append(torch.full((4,), float(i)), maps[i]) == i
    reader = MemoDB(path, key_dim=4, map_shape=(2, 3, 3), mode="r")
    assert len(reader) == 3 and reader.recovered_bytes == 0
    db.close()
    again = MemoDB(path, key_dim=4, map_shape=(2, 3, 3))
    assert len(again) == 3 and again.recovered_bytes == 0 and again.skipped_records == ()
    assert np.array_equal(again.keys()[:, 0], [0.0, 1.0, 2.0])
    for i in range(3):
        assert torch.equal(again.get_map(i), maps[i])
    assert again.append(torch.zeros(4), maps[0]) == 3
    assert reader.refresh() == 1 and len(reader) == 4 and reader.refresh() == 0
    assert torch.equal(reader.get_map(3), maps[0])


def test_memo_db_survives_crash_mid_write(tmp_path):
    path = tmp_path / "memo.db"
    db = MemoDB(path, key_dim=4, map_shape=(2, 2))
    for i in range(3):
        db.append(np.arange(4) + i, np.eye(2) * i)
    db.close()
    record = db.record_dtype.itemsize
    size = path.stat().st_size
    with open(path, "ab") as f:  # a crash halfway through the 4th record
        f.write(b"\x07" * (record // 2))
    with pytest.warns(MemoDBWarning, match=f"removed a torn tail of {record // 2} bytes"):
        recovered = MemoDB(path, key_dim=4, map_shape=(2, 2))
    assert len(recovered) == 3 and recovered.recovered_bytes == record // 2
    assert path.stat().st_size == size
    assert torch.equal(recovered.get_map(2), torch.eye(2) * 2)
    assert recovered.append(np.ones(4), np.ones((2, 2))) == 3
    recovered.close()
    # a whole record whose checksum does not match (torn write of the payload)
    with open(path, "r+b") as f:
        f.seek(size + record - 8)
        f.write(b"\xff\xff\xff\xff")
    with pytest.warns(MemoDBWarning, match=f"removed a torn tail of {record} bytes"):
        recovered = MemoDB(path, key_dim=4, map_shape=(2, 2))
    assert len(recovered) == 3 and recovered.recovered_bytes == record
    assert np.array_equal(recovered.keys()[1], np.arange(4) + 1)


def test_memo_db_errors(tmp_path):
    path = tmp_path / "memo.db"
    MemoDB(path, key_dim=4, map_shape=(2, 2)).close()
    with pytest.raises(
        ValueError,
        match=re.escape("holds key_dim=4, map_shape=(2, 2), not key_dim=8, map_shape=(2, 2)"),
    ):
        MemoDB(path, key_dim=8, map_shape=(2, 2))
    other = tmp_path / "other.bin"
    other.write_bytes(b"x" * 100)
    with pytest.raises(ValueError, match="is not a memo database"):
        MemoDB(other, key_dim=4, map_shape=(2, 2))
    (tmp_path / "empty.db").touch()
    with pytest.raises(ValueError, match=re.escape("is not a memo database (it is empty)")):
        MemoDB(tmp_path / "empty.db", key_dim=4, map_shape=(2, 2), mode="r")
    with pytest.raises(FileNotFoundError):
        MemoDB(tmp_path / "missing.db", key_dim=4, map_shape=(2, 2), mode="r")
    assert not (tmp_path / "missing.db").exists()
    with pytest.raises(ValueError, match=re.escape("mode must be 'a' (writer) or 'r' (reader)")):
        MemoDB(path, key_dim=4, map_shape=(2, 2), mode="w")
    with pytest.raises(ValueError, match=re.escape("timeout must be seconds >= 0, not -1")):
        MemoDB(path, key_dim=4, map_shape=(2, 2), timeout=-1)
    with pytest.raises(ValueError, match=re.escape("expected key (4,) and map (2, 2)")):
        MemoDB(path, key_dim=4, map_shape=(2, 2)).append(np.ones(3), np.ones((2, 2)))
    reader = MemoDB(path, key_dim=4, map_shape=(2, 2), mode="r")
    with pytest.raises(ValueError, match=re.escape("is open read-only (mode='r')")):
        reader.append(np.ones(4), np.ones((2, 2)))
    reader.close()
    with pytest.raises(ValueError, match=re.escape("MemoDB.refresh: ")):
        reader.refresh()
    header = bytearray(path.read_bytes())
    header[40] = 1  # padding
    path.write_bytes(bytes(header))
    with pytest.raises(ValueError, match="has a damaged header"):
        MemoDB(path, key_dim=4, map_shape=(2, 2), mode="r")


def test_memo_db_flipped_bit_in_record_10_of_100_costs_that_record_only(tmp_path):
    path = tmp_path / "memo.db"
    stride = _fill(path, 100)
    size = path.stat().st_size
    _flip_bit(path, 10, stride, byte=4 * KEY_DIM + 5, bit=3)  # inside the map
    survivors = [i for i in range(100) if i != 10]
    with pytest.warns(MemoDBWarning, match=r"skipped 1 damaged record\(s\) at slot\(s\) 10 "):
        reader = MemoDB(path, KEY_DIM, MAP_SHAPE, mode="r")
    assert reader.skipped_records == (10,) and reader.skipped_bytes == stride
    assert reader.recovered_bytes == 0
    _assert_records(reader, survivors)
    with pytest.warns(MemoDBWarning, match="99 records readable"):
        writer = MemoDB(path, KEY_DIM, MAP_SHAPE)
    assert path.stat().st_size == size  # the damaged record is skipped, not cut
    assert writer.skipped_records == (10,)
    assert writer.append(_key(100), _map(100)) == 99
    writer.close()
    assert reader.refresh() == 1
    _assert_records(reader, [*survivors, 100])


@pytest.mark.parametrize("byte", [0, 4 * KEY_DIM + 4 * 6 + 2], ids=["key", "crc"])
def test_memo_db_flipped_bit_in_key_or_crc_costs_that_record_only(tmp_path, byte):
    path = tmp_path / "memo.db"
    stride = _fill(path, 20)
    _flip_bit(path, 7, stride, byte=byte, bit=7)
    with pytest.warns(MemoDBWarning):
        db = MemoDB(path, KEY_DIM, MAP_SHAPE, mode="r")
    assert db.skipped_records == (7,)
    _assert_records(db, [i for i in range(20) if i != 7])


def test_memo_db_zeroed_block_costs_the_records_it_covers(tmp_path):
    path = tmp_path / "memo.db"
    stride = _fill(path, 50)
    with open(path, "r+b") as f:  # a lost block: records 20 to 24 and part of 25 read as zeros
        f.seek(HEADER_SIZE + 20 * stride)
        f.write(bytes(5 * stride + 3))
    with pytest.warns(MemoDBWarning, match=r"skipped 6 damaged record\(s\) at slot\(s\) 20, 21,"):
        db = MemoDB(path, KEY_DIM, MAP_SHAPE)
    assert db.skipped_records == (20, 21, 22, 23, 24, 25) and db.skipped_bytes == 6 * stride
    _assert_records(db, [*range(20), *range(26, 50)])


def test_memo_db_truncated_mid_record_loses_only_the_last_record(tmp_path):
    path = tmp_path / "memo.db"
    stride = _fill(path, 100)
    full = path.stat().st_size
    os.truncate(path, full - stride // 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a reader says nothing: the tail may be in flight
        reader = MemoDB(path, KEY_DIM, MAP_SHAPE, mode="r")
    assert reader.recovered_bytes == stride - stride // 2 and reader.skipped_records == ()
    assert path.stat().st_size == full - stride // 2  # a reader never repairs
    _assert_records(reader, range(99))
    with pytest.warns(MemoDBWarning, match="removed a torn tail"):
        writer = MemoDB(path, KEY_DIM, MAP_SHAPE)
    assert path.stat().st_size == full - stride
    _assert_records(writer, range(99))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 30),
    damage=st.lists(
        st.tuples(st.integers(0, 29), st.integers(0, 10**6), st.integers(1, 255)),
        max_size=6,
    ),
    cut=st.none() | st.integers(0, 10**6),
)
def test_memo_db_any_damage_costs_exactly_the_damaged_records(tmp_path_factory, n, damage, cut):
    path = tmp_path_factory.mktemp("fuzz") / "memo.db"
    stride = _fill(path, n)
    written = path.read_bytes()
    raw = bytearray(written)
    for slot, pos, mask in damage:  # bytes XORed anywhere in some records
        raw[HEADER_SIZE + slot % n * stride + pos % stride] ^= mask
    if cut is not None:  # and maybe a torn tail: the file cut inside the last record
        raw = raw[: len(raw) - 1 - cut % (stride - 1)]
    path.write_bytes(bytes(raw))
    slots = [slice(HEADER_SIZE + i * stride, HEADER_SIZE + (i + 1) * stride) for i in range(n)]
    good = [i for i in range(n) if raw[slots[i]] == written[slots[i]]]
    last_good = good[-1] if good else -1
    holes = tuple(i for i in range(last_good) if i not in good)
    reader = _open_quiet(path, mode="r")
    assert reader.skipped_records == holes
    assert reader.recovered_bytes == len(raw) - HEADER_SIZE - (last_good + 1) * stride
    _assert_records(reader, good)
    writer = _open_quiet(path)
    _assert_records(writer, good)
    assert path.stat().st_size == HEADER_SIZE + (last_good + 1) * stride
    assert writer.append(_key(99), _map(99)) == len(good)
    writer.close()
    _assert_records(_open_quiet(path, mode="r"), [*good, 99])


# Writer and readers in separate processes. Forked, not spawned: a fresh interpreter
# spends seconds importing torch and faiss.
_fork = multiprocessing.get_context("fork")


def _writer_process(path, n, acked, started):
    with MemoDB(path, KEY_DIM, MAP_SHAPE, durable=False) as db:
        started.set()
        for i in range(n):
            db.append(_key(i), _map(i))
            acked.value = i + 1  # acknowledged: append has returned
            if i % 50 == 0:
                time.sleep(0.001)  # let readers in at every stage of the file


def _reader_process(path, acked, done, results):
    opens = refreshes = 0
    try:
        while True:
            finished = done.is_set()
            floor = acked.value
            db = MemoDB(path, KEY_DIM, MAP_SHAPE, mode="r")
            opens += 1
            assert len(db) >= floor, f"opened after {floor} acks, saw {len(db)}"
            assert db.skipped_records == ()
            for _ in range(3):
                n = len(db)
                assert np.array_equal(db.keys()[:, 0], np.arange(n, dtype=np.float32))
                if n:
                    assert np.array_equal(db.get_map(n - 1).numpy(), _map(n - 1))
                floor = acked.value
                db.refresh()
                refreshes += 1
                assert len(db) >= max(n, floor)
            db.close()
            if finished:
                break
        results.put(("ok", opens, refreshes))
    except BaseException as e:  # report to the test, which asserts on it
        results.put(("error", repr(e), 0))


def test_memo_db_readers_see_a_prefix_while_a_writer_process_appends(tmp_path):
    path = tmp_path / "memo.db"
    n = 3000
    MemoDB(path, KEY_DIM, MAP_SHAPE).close()  # readers need the header to exist
    acked, done = _fork.Value("q", 0), _fork.Event()
    started, results = _fork.Event(), _fork.Queue()
    writer = _fork.Process(target=_writer_process, args=(path, n, acked, started))
    readers = [
        _fork.Process(target=_reader_process, args=(path, acked, done, results)) for _ in range(2)
    ]
    writer.start()
    for r in readers:
        r.start()
    assert started.wait(10)
    with pytest.raises(MemoDBLockedError, match="is open for writing elsewhere"):
        MemoDB(path, KEY_DIM, MAP_SHAPE)  # a second writer while the first appends
    writer.join(30)
    done.set()
    outcomes = [results.get(timeout=30) for _ in readers]
    for r in readers:
        r.join(10)
    assert writer.exitcode == 0
    assert [o[0] for o in outcomes] == ["ok", "ok"], outcomes
    assert all(opens >= 2 for _, opens, _ in outcomes)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        final = MemoDB(path, KEY_DIM, MAP_SHAPE)
    assert len(final) == n and final.recovered_bytes == 0 and final.skipped_records == ()
    assert path.stat().st_size == HEADER_SIZE + n * final.record_dtype.itemsize
    _assert_records(final, range(n))


def _second_writer_process(path, timeout, results):
    t0 = time.monotonic()
    try:
        with MemoDB(path, KEY_DIM, MAP_SHAPE, timeout=timeout) as db:
            results.put(("opened", db.append(_key(7), _map(7)), time.monotonic() - t0))
    except MemoDBLockedError as e:
        results.put(("locked", str(e), time.monotonic() - t0))


def test_memo_db_second_writer_process_is_refused_or_waits_for_timeout(tmp_path):
    path = tmp_path / "memo.db"
    first = MemoDB(path, KEY_DIM, MAP_SHAPE)
    first.append(_key(0), _map(0))
    results = _fork.Queue()
    for timeout in (0.0, 0.3):  # refused at once; refused after waiting 0.3 s
        p = _fork.Process(target=_second_writer_process, args=(path, timeout, results))
        p.start()
        status, message, waited = results.get(timeout=10)
        p.join(10)
        assert status == "locked" and "is open for writing elsewhere" in message
        assert waited >= timeout
    assert "after waiting 0.3 s" in message
    p = _fork.Process(target=_second_writer_process, args=(path, 10.0, results))
    p.start()
    time.sleep(0.2)
    first.close()  # the waiting writer gets the file
    status, record_id, waited = results.get(timeout=10)
    p.join(10)
    assert (status, record_id) == ("opened", 1) and 0.2 <= waited < 5
    _assert_records(MemoDB(path, KEY_DIM, MAP_SHAPE, mode="r"), [0, 7])


def test_memo_db_forked_child_cannot_append_through_the_parents_writer(tmp_path):
    db = MemoDB(tmp_path / "memo.db", KEY_DIM, MAP_SHAPE)
    results = _fork.Queue()

    def child():
        try:
            db.append(_key(0), _map(0))
            results.put("appended")
        except MemoDBLockedError as e:
            results.put(str(e))

    p = _fork.Process(target=child)
    p.start()
    message = results.get(timeout=10)
    p.join(10)
    assert f"belongs to process {os.getpid()}" in message
    assert len(db) == 0 and db.append(_key(0), _map(0)) == 0


def test_memo_db_second_writer_in_the_same_process_is_refused_until_closed(tmp_path):
    path = tmp_path / "memo.db"
    with MemoDB(path, KEY_DIM, MAP_SHAPE) as first:
        with pytest.raises(MemoDBLockedError, match=re.escape("open it with mode='r' to read")):
            MemoDB(path, KEY_DIM, MAP_SHAPE)
        first.append(_key(0), _map(0))
    with MemoDB(path, KEY_DIM, MAP_SHAPE) as second:
        assert len(second) == 1
