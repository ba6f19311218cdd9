"""Text data: formats, column choice, dropping, membership, fingerprints, subsets, errors."""

from __future__ import annotations

import gzip
import hashlib
import json
import warnings

import numpy as np
import pytest

from miaudit.data import (
    TextDataset,
    load_texts,
    set_aside_texts,
    split_texts,
    text_fingerprints,
)
from miaudit.errors import DataError, DataWarning


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _quiet_load(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning expected
        return load_texts(*args, **kwargs)


# --------------------------------------------------------------------------- formats


def test_jsonl_texts_ids_members(tmp_path):
    path = _jsonl(tmp_path / "d.jsonl", [
        {"text": " Stocks rise ", "doc": "a", "m": True},
        {"text": "Rain expected", "doc": "b", "m": "non-member"},
        {"text": "Team wins", "doc": "c", "m": 1},
        {"text": "New phone", "doc": "d", "m": "FALSE"},
    ])
    ds = _quiet_load(path, id_column="doc", member_column="m")
    assert ds.texts == ["Stocks rise", "Rain expected", "Team wins", "New phone"]
    assert ds.ids.tolist() == ["a", "b", "c", "d"]
    assert ds.is_member.dtype == bool
    assert ds.is_member.tolist() == [True, False, True, False]
    assert ds.name == "d.jsonl" and ds.source == str(path.resolve())
    assert ds.info["n_members"] == 2 and ds.info["n_non_members"] == 2
    assert ds.info["text_columns"] == ["text"]


def test_jsonl_joins_keys_and_skips_blank_lines(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"title": "A", "body": "b c"}\n\n{"title": "D", "body": ""}\n')
    ds = _quiet_load(path, text_column="title,body")
    assert ds.texts == ["A. b c", "D"]
    assert ds.ids.tolist() == ["0", "1"]


def test_jsonl_gz(tmp_path):
    path = tmp_path / "d.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write('{"text": "one"}\n{"text": "two"}\n')
    assert _quiet_load(path).texts == ["one", "two"]


def test_csv_with_header_default_text_column(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("id,text,member\nx1,hello world,member\nx2,\"a, b\",non-member\n")
    ds = _quiet_load(path, id_column="id", member_column="member")
    assert ds.texts == ["hello world", "a, b"]
    assert ds.ids.tolist() == ["x1", "x2"]
    assert ds.is_member.tolist() == [True, False]
    assert ds.info["header"] is True


def test_tsv_positions_with_header_guessed(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_text("label\ttitle\tbody\n1\tHello\tworld here\n0\tBye\tnow\n")
    ds = _quiet_load(path, text_column="1,2", member_column=0)
    assert ds.info["header"] is True  # first row looks like names
    assert ds.texts == ["Hello. world here", "Bye. now"]
    assert ds.is_member.tolist() == [True, False]
    assert ds.info["text_columns"] == ["title", "body"]


def test_headerless_csv_by_position(tmp_path):
    path = tmp_path / "news.csv"
    path.write_text('"3","Fears for pension","Unions say they are disappointed."\n'
                    '"4","Race is on","A second team of rocketeers."\n')
    ds = _quiet_load(path, text_column="1,2", member_column=None)
    assert ds.info["header"] is False
    assert ds.texts == ["Fears for pension. Unions say they are disappointed.",
                        "Race is on. A second team of rocketeers."]
    assert _quiet_load(path, text_column=[2]).texts[1] == "A second team of rocketeers."
    with pytest.raises(DataError, match=r"no header row, give 0-based positions"):
        load_texts(path)
    with pytest.raises(DataError, match=r"out of range"):
        load_texts(path, text_column="5")


def test_header_override(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("alpha,beta\ngamma,delta\n")  # looks like a header
    assert _quiet_load(path, text_column=1).texts == ["delta"]
    assert _quiet_load(path, text_column=1, header=False).texts == ["beta", "delta"]


def test_txt_one_document_per_line(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text("first doc\n\n   \nsecond doc\n")
    ds = _quiet_load(path)
    assert ds.texts == ["first doc", "second doc"]
    assert ds.is_member is None
    with pytest.raises(DataError, match=r"not apply to the \.txt file"):
        load_texts(path, member_column="m")


@pytest.mark.shared_data
def test_ag_news_headerless(shared_file):
    path = shared_file("ag_news_test.csv.gz")
    ds = _quiet_load(path, text_column="1,2", n_records=50, seed=1)
    assert len(ds) == 50 and ds.info["header"] is False
    assert ds.info["n_read"] == 7600
    assert all(". " in t for t in ds.texts)
    assert ds.fingerprint == load_texts(path, text_column="1,2", n_records=50, seed=1).fingerprint


# --------------------------------------------------------------------------- dropping


def test_empty_and_duplicate_texts_dropped_with_warning(tmp_path):
    path = _jsonl(tmp_path / "d.jsonl", [
        {"text": "same", "m": True},
        {"text": "   ", "m": True},
        {"text": "other", "m": False},
        {"text": " same ", "m": False},  # duplicate with a conflicting label
        {"text": "same", "m": True},
        {"m": False},  # missing text key counts as empty
    ])
    with pytest.warns(DataWarning, match=r"2 empty text.*2 duplicate"):
        ds = load_texts(path, member_column="m")
    assert ds.texts == ["same", "other"]
    assert ds.ids.tolist() == ["0", "2"]
    assert ds.is_member.tolist() == [True, False]
    assert ds.info["n_read"] == 6
    assert ds.info["n_empty_dropped"] == 2
    assert ds.info["n_duplicates_dropped"] == 2
    assert ds.info["n_duplicate_label_conflicts"] == 1
    # the model trained on it under some copy: a member whichever copy comes first
    path = _jsonl(tmp_path / "e.jsonl", [{"text": "rain", "m": False}, {"text": "sun", "m": False},
                                          {"text": "rain", "m": True}, {"text": "fog", "m": True}])
    with pytest.warns(DataWarning, match="counts as a member"):
        ds = load_texts(path, member_column="m")
    assert dict(zip(ds.texts, ds.is_member.tolist(), strict=True)) == {
        "rain": True, "sun": False, "fog": True}


def test_duplicate_counts_and_conflicts(tmp_path):
    path = _jsonl(tmp_path / "d.jsonl", [
        {"text": "a", "m": 1}, {"text": "b", "m": 0}, {"text": "a", "m": 0},
        {"text": "a", "m": 1}, {"text": "c", "m": 0},
    ])
    with pytest.warns(DataWarning, match=r"the text counts as a member"):
        ds = load_texts(path, member_column="m")
    assert ds.texts == ["a", "b", "c"]
    assert ds.is_member.tolist() == [True, False, False]
    assert ds.info["n_duplicates_dropped"] == 2
    assert ds.info["n_duplicate_label_conflicts"] == 1
    assert len(set(ds.fingerprints.tolist())) == len(ds)


# --------------------------------------------------------------------------- fingerprints


def test_fingerprints_versioned_and_content_based(tmp_path):
    a = _quiet_load(_jsonl(tmp_path / "a.jsonl", [{"text": "x y"}, {"text": "z"}]))
    path_b = tmp_path / "b.txt"
    path_b.write_text("x y\nz\n")
    b = _quiet_load(path_b)
    assert a.fingerprints.tolist() == b.fingerprints.tolist()
    assert a.fingerprint == b.fingerprint  # same ids and texts
    expected = hashlib.sha256(b"miaudit-record-v1\x00text\x00x y").hexdigest()
    assert a.fingerprints[0] == expected
    assert text_fingerprints(["z"])[0] == a.fingerprints[1]


# --------------------------------------------------------------------------- subsets, splits


def test_n_records_is_seeded_and_stratified(tmp_path):
    rows = [{"text": f"text number {i}", "m": i % 4 == 0} for i in range(40)]
    path = _jsonl(tmp_path / "d.jsonl", rows)
    a = _quiet_load(path, member_column="m", n_records=20, seed=5)
    b = _quiet_load(path, member_column="m", n_records=20, seed=5)
    c = _quiet_load(path, member_column="m", n_records=20, seed=6)
    assert len(a) == 20 and a.texts == b.texts and a.texts != c.texts
    assert int(a.is_member.sum()) == 5  # 10 of 40 members -> 5 of 20
    assert a.info["subset_of"] != a.fingerprint
    assert len(_quiet_load(path, n_records=100)) == 40  # more than available: all
    with pytest.raises(DataError, match=r"n_records"):
        load_texts(path, n_records=0)


def test_subset_by_positions_and_mask():
    ds = TextDataset.from_texts(["a", "b", "c", "d"], is_member=[True, False, True, False])
    sub = ds.subset([3, 0])
    assert sub.texts == ["d", "a"] and sub.ids.tolist() == ["3", "0"]
    assert sub.is_member.tolist() == [False, True]
    assert sub.info["n_texts"] == 2 and sub.info["n_members"] == 1
    mask = np.array([True, True, False, False])
    assert ds.subset(mask).texts == ["a", "b"]
    with pytest.raises(DataError, match=r"mask"):
        ds.subset(np.array([True]))


def test_split_texts_half_and_seeded():
    ds = TextDataset.from_texts([f"t{i}" for i in range(11)])
    m = split_texts(ds, 3)
    assert m.dtype == bool and m.shape == (11,) and int(m.sum()) == 5
    assert np.array_equal(m, split_texts(ds, 3))
    assert not np.array_equal(m, split_texts(ds, 4))


def test_set_aside_texts_depends_on_contents_and_seed_only():
    texts = [f"text number {i}" for i in range(40)]
    members = np.arange(40) % 3 == 0
    ds = TextDataset.from_texts(texts, is_member=members)
    aside = set_aside_texts(ds, 7, seed=2)
    assert aside.dtype == bool and aside.shape == (40,) and int(aside.sum()) == 7
    assert np.array_equal(aside, set_aside_texts(ds, 7, seed=2))
    assert not np.array_equal(aside, set_aside_texts(ds, 7, seed=3))
    # neither membership nor IDs nor the order of the records change the choice
    swapped = TextDataset.from_texts(texts, is_member=~members, ids=[f"x{i}" for i in range(40)])
    assert np.array_equal(aside, set_aside_texts(swapped, 7, seed=2))
    order = np.random.default_rng(0).permutation(40)
    shuffled = ds.subset(order)
    assert np.array_equal(set_aside_texts(shuffled, 7, seed=2), aside[order])
    # a larger share keeps the smaller one (the ranking is fixed by the seed)
    assert (set_aside_texts(ds, 12, seed=2) >= aside).all()
    for bad in (0, 39, 2.5, True):
        with pytest.raises(DataError, match=r"'size' must be a whole number from 1 to 38"):
            set_aside_texts(ds, bad, seed=2)


# --------------------------------------------------------------------------- errors


def test_errors_are_one_line_data_errors(tmp_path):
    with pytest.raises(DataError, match=r"not found"):
        load_texts(tmp_path / "missing.jsonl")
    odd = tmp_path / "d.xml"
    odd.write_text("<a/>")
    with pytest.raises(DataError, match=r"Unsupported file type.*\.jsonl"):
        load_texts(odd)
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "ok"}\n{"text": broken}\n')
    with pytest.raises(DataError, match=r"Line 2 of d\.jsonl is not valid JSON"):
        load_texts(path)
    path.write_text('{"body": "ok", "title": "t"}\n')
    with pytest.raises(DataError, match=r"Text key 'text' not found.*'body', 'title'"):
        load_texts(path)
    path.write_text('[1, 2]\n')
    with pytest.raises(DataError, match=r"Line 1 .* not an object"):
        load_texts(path)
    path.write_text('{"text": "a", "m": "maybe"}\n')
    with pytest.raises(DataError, match=r"'maybe' at record 0.*member/non-member"):
        load_texts(path, member_column="m")
    path.write_text('{"text": "  "}\n{"text": ""}\n')
    with pytest.raises(DataError, match=r"No text left in d\.jsonl: all 2 record"):
        load_texts(path)
    csv = tmp_path / "d.csv"
    csv.write_text("id,body\n1,hello\n")
    with pytest.raises(DataError, match=r"Text column 'text' not found.*'id', 'body'"):
        load_texts(csv)
    with pytest.raises(DataError, match=r"Member column 'mem' not found"):
        load_texts(csv, text_column="body", member_column="mem")
    csv.write_text("id,text\n1,hello\n1,world\n")
    with pytest.raises(DataError, match=r"more than once"):
        load_texts(csv, id_column="id")


def test_error_messages_are_single_lines(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('"3","Title","Body"\n"4","T2","B2"\n')
    for kwargs in ({}, {"text_column": "title"}, {"text_column": "9"},
                   {"text_column": "1", "member_column": "0"}):
        with pytest.raises(DataError) as info:
            load_texts(path, **kwargs)
        assert "\n" not in str(info.value)
