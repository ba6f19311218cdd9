"""Tests of miaudit.data: built-ins, npz, CSV/parquet tables, fingerprints and bad input."""

from __future__ import annotations

import gzip
import hashlib
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from miaudit.data import (
    BUILTIN_DATASETS,
    FINGERPRINT_VERSION,
    MISSING_TOKEN,
    Dataset,
    array_record_fingerprints,
    dataset_fingerprint,
    load_dataset,
)
from miaudit.errors import DataError, DataWarning

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
LOCATION30 = SHARED / "location30.npz"
ADULT = SHARED / "adult.csv.gz"


def _save_npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def _small_npz(tmp_path: Path, name: str = "small.npz", **extra: np.ndarray) -> Path:
    rng = np.random.default_rng(0)
    arrays = {"X": rng.integers(0, 5, size=(12, 4)).astype(np.uint8),
              "y": np.array([3, 7, 10] * 4)}
    arrays.update(extra)
    return _save_npz(tmp_path / name, **arrays)


def _assert_same_dataset(a: Dataset, b: Dataset) -> None:
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.fingerprints, b.fingerprints)
    assert a.classes == b.classes
    assert a.feature_names == b.feature_names
    assert a.fingerprint == b.fingerprint
    for key in ("n_missing_values", "missing_per_column", "categorical_columns",
                "numeric_columns"):
        assert a.info[key] == b.info[key]


# ---------------------------------------------------------------------------- built-ins

BUILTIN_FACTS = {
    "digits": ((1797, 64), tuple(str(i) for i in range(10))),
    "breast_cancer": ((569, 30), ("malignant", "benign")),
    "wine": ((178, 13), ("class_0", "class_1", "class_2")),
}


def test_builtin_registry_names_every_builtin():
    assert set(BUILTIN_DATASETS) == set(BUILTIN_FACTS)


@pytest.mark.parametrize("name", sorted(BUILTIN_FACTS))
def test_builtin_loads_standardised(name):
    shape, classes = BUILTIN_FACTS[name]
    ds = load_dataset(name)
    assert ds.name == name
    assert ds.X.shape == shape and ds.X.dtype == np.float32
    assert ds.y.dtype == np.int64 and ds.y.shape == (shape[0],)
    assert ds.classes == classes
    assert ds.n_records == shape[0] and ds.n_features == shape[1]
    assert ds.n_classes == len(classes)
    assert set(np.unique(ds.y)) == set(range(len(classes)))
    np.testing.assert_allclose(ds.X.mean(axis=0), 0.0, atol=1e-5)
    std = ds.X.std(axis=0)
    constant = np.isclose(std, 0.0)
    np.testing.assert_allclose(std[~constant], 1.0, atol=1e-4)
    assert np.all(ds.X[:, constant] == 0.0)
    assert len(ds.info["constant_columns"]) == int(constant.sum())
    assert ds.ids.tolist() == [str(i) for i in range(shape[0])]
    assert ds.info["standardised"] is True
    json.dumps(ds.info)  # JSON-ready
    assert ds.fingerprint == load_dataset(name).fingerprint


def test_builtin_fingerprint_uses_raw_features_and_label_names():
    from sklearn.datasets import load_wine

    raw = load_wine()
    ds = load_dataset("wine")
    label = raw.target_names[raw.target[0]].encode()
    payload = (len(label).to_bytes(8, "little") + label
               + np.asarray(raw.data[0], dtype="<f8").tobytes())
    expected = hashlib.sha256(b"miaudit-record-v1\x00array\x00" + payload).hexdigest()
    assert ds.fingerprints[0] == expected


def test_builtin_rejects_table_options():
    with pytest.raises(DataError, match="label_column and id_column"):
        load_dataset("wine", label_column="target")


# ---------------------------------------------------------------------------- npz


def test_npz_round_trip_without_ids(tmp_path):
    path = _small_npz(tmp_path)
    raw = np.load(path)
    ds = load_dataset(path)
    assert ds.name == "small.npz"
    np.testing.assert_array_equal(ds.X, raw["X"].astype(np.float32))  # used as given
    assert ds.X.dtype == np.float32
    assert ds.classes == ("3", "7", "10")  # numeric order, not string order
    np.testing.assert_array_equal(ds.y, [0, 1, 2] * 4)
    assert ds.ids.tolist() == [str(i) for i in range(12)]
    assert ds.info["standardised"] is False
    assert "not standardised" in ds.info["encoding"]
    assert ds.info["format"] == "npz"
    assert ds.feature_names == ("x0", "x1", "x2", "x3")
    assert ds.info["class_counts"] == {"3": 4, "7": 4, "10": 4}


def test_npz_round_trip_with_ids_and_string_labels(tmp_path):
    ids = np.array([f"rec-{i:02d}" for i in range(8)])
    y = np.array(["cat", " dog", "cat ", "bird", "dog", "bird", "cat", "dog"])
    X = np.arange(16, dtype=np.float64).reshape(8, 2) / 3
    ds = load_dataset(_save_npz(tmp_path / "s.npz", X=X, y=y, ids=ids))
    assert ds.ids.tolist() == ids.tolist()
    assert ds.classes == ("bird", "cat", "dog")
    np.testing.assert_array_equal(ds.y, [1, 2, 1, 0, 2, 0, 1, 2])
    np.testing.assert_allclose(ds.X, X.astype(np.float32))
    assert ds.info["ids"] == "array 'ids'"


def test_npz_integer_ids_become_strings(tmp_path):
    path = _small_npz(tmp_path, ids=np.arange(100, 112))
    assert load_dataset(path).ids.tolist() == [str(i) for i in range(100, 112)]


def test_npz_fingerprints_stable_and_sensitive(tmp_path):
    path = _small_npz(tmp_path)
    first, second = load_dataset(path), load_dataset(str(path))
    np.testing.assert_array_equal(first.fingerprints, second.fingerprints)
    assert first.fingerprint == second.fingerprint
    assert len(set(first.fingerprints.tolist())) == len(
        {(tuple(r), c) for r, c in zip(first.X.tolist(), first.y.tolist(), strict=True)})

    raw = np.load(path)
    X = raw["X"].copy()
    X[5, 2] += 1
    changed = load_dataset(_save_npz(tmp_path / "changed.npz", X=X, y=raw["y"]))
    differs = changed.fingerprints != first.fingerprints
    assert differs.tolist() == [i == 5 for i in range(12)]
    assert changed.fingerprint != first.fingerprint


def test_npz_fingerprint_follows_definition(tmp_path):
    X = np.array([[0.5, -0.0, 3.0], [1.0, 2.0, 3.0], [1.0, 2.0, 4.0], [0.0, 0.0, 0.0]])
    y = np.array(["b", "a", "a", "b"])
    ds = load_dataset(_save_npz(tmp_path / "d.npz", X=X, y=y))
    for i in range(4):
        label = y[i].encode()
        row = (X[i] + 0.0).astype("<f8").tobytes()
        digest = hashlib.sha256(b"miaudit-record-v1\x00array\x00"
                                + len(label).to_bytes(8, "little") + label + row)
        assert ds.fingerprints[i] == digest.hexdigest()
    pairs = b"".join(len(str(i).encode()).to_bytes(8, "little") + str(i).encode()
                     + bytes.fromhex(ds.fingerprints[i]) for i in range(4))
    assert ds.fingerprint == hashlib.sha256(b"miaudit-dataset-v1\x00" + pairs).hexdigest()
    assert ds.info["fingerprint_version"] == FINGERPRINT_VERSION == "miaudit-record-v1"


def test_npz_negative_zero_equals_zero():
    a = array_record_fingerprints(np.array([[0.0, 1.0]]), np.array([0]), ("a",))
    b = array_record_fingerprints(np.array([[-0.0, 1.0]]), np.array([0]), ("a",))
    assert a[0] == b[0]


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 12), st.integers(1, 5), st.randoms(use_true_random=False))
def test_record_fingerprints_follow_records_under_permutation(n, d, rnd):
    rng = np.random.default_rng(rnd.randrange(2**32))
    X = rng.normal(size=(n, d))
    y = rng.integers(0, 3, size=n)
    classes = ("a", "b", "c")
    perm = rng.permutation(n)
    fp = array_record_fingerprints(X, y, classes)
    np.testing.assert_array_equal(array_record_fingerprints(X[perm], y[perm], classes), fp[perm])
    ids = np.arange(n).astype(str)
    assert dataset_fingerprint(ids[perm], fp[perm]) == dataset_fingerprint(ids[perm], fp[perm])
    if not np.array_equal(perm, np.arange(n)):
        assert dataset_fingerprint(ids[perm], fp[perm]) != dataset_fingerprint(ids, fp)


# ---------------------------------------------------------------------------- tables

CSV_TEXT = """id,age,color,size,weight,label
r0,30,red,S,1,yes
r1,40, blue ,M,2,no
r2,?,red,,3,yes
r3,50, ? ,L,4,no
r4,NA,green,M,5, yes
r5,60,,S,6,no
r6,20,red,NaN,7,yes
r7,35,blue,null,8,no
"""


@pytest.fixture
def csv_path(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text(CSV_TEXT)
    return path


def test_csv_encoding_and_missing_counts(csv_path):
    ds = load_dataset(csv_path, label_column="label", id_column="id")
    assert ds.name == "table.csv"
    assert ds.feature_names == (
        "age", "color=blue", "color=green", "color=red", f"color={MISSING_TOKEN}",
        "size=L", "size=M", "size=S", f"size={MISSING_TOKEN}", "weight")
    assert ds.classes == ("no", "yes")
    np.testing.assert_array_equal(ds.y, [1, 0, 1, 0, 1, 0, 1, 0])
    assert ds.ids.tolist() == [f"r{i}" for i in range(8)]
    info = ds.info
    assert info["missing_per_column"] == {"age": 2, "color": 2, "size": 3}
    assert info["n_missing_values"] == 7
    assert info["categorical_columns"] == ["color", "size"]
    assert info["numeric_columns"] == ["age", "weight"]
    assert info["id_column"] == "id" and info["label_column"] == "label"
    json.dumps(info)

    col = {name: ds.X[:, j] for j, name in enumerate(ds.feature_names)}
    np.testing.assert_array_equal(col["color=blue"], [0, 1, 0, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(col[f"color={MISSING_TOKEN}"], [0, 0, 0, 1, 0, 1, 0, 0])
    np.testing.assert_array_equal(col[f"size={MISSING_TOKEN}"], [0, 0, 1, 0, 0, 0, 1, 1])
    onehot = ds.X[:, 1:9]
    np.testing.assert_array_equal(onehot[:, :4].sum(axis=1), 1)  # exactly one color each
    np.testing.assert_array_equal(onehot[:, 4:].sum(axis=1), 1)

    weight = col["weight"]
    assert abs(weight.mean()) < 1e-6 and abs(weight.std() - 1) < 1e-6
    age = col["age"]
    present = np.array([True, True, False, True, False, True, True, True])
    assert np.all(age[~present] == 0.0)  # imputed with the mean
    assert abs(age[present].mean()) < 1e-6 and abs(age[present].std() - 1) < 1e-6
    raw_age = np.array([30, 40, 50, 60, 20, 35], dtype=float)
    np.testing.assert_allclose(age[present], (raw_age - raw_age.mean()) / raw_age.std(),
                               rtol=1e-6)


def test_csv_fingerprint_follows_definition(csv_path):
    ds = load_dataset(csv_path, label_column="label", id_column="id")
    frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    for i, row in frame.iterrows():
        pairs = []
        for name in sorted(c for c in frame.columns if c != "id"):
            cell = row[name].strip()
            pairs.append([name, None if cell.lower() in {"", "?", "na", "nan", "null"}
                          else cell])
        text = json.dumps(pairs, ensure_ascii=True, separators=(",", ":"))
        expected = hashlib.sha256(b"miaudit-record-v1\x00table\x00" + text.encode()).hexdigest()
        assert ds.fingerprints[i] == expected


def test_csv_fingerprints_ignore_column_order_and_ids(csv_path, tmp_path):
    ds = load_dataset(csv_path, label_column="label", id_column="id")
    frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    reordered = tmp_path / "reordered.csv"
    frame[["label", "weight", "id", "size", "color", "age"]].to_csv(reordered, index=False)
    other = load_dataset(reordered, label_column="label", id_column="id")
    np.testing.assert_array_equal(other.fingerprints, ds.fingerprints)
    assert other.fingerprint == ds.fingerprint
    for j, name in enumerate(ds.feature_names):  # same columns, file order
        np.testing.assert_array_equal(other.X[:, other.feature_names.index(name)], ds.X[:, j])

    renamed = tmp_path / "renamed.csv"
    frame.assign(id=[f"other{i}" for i in range(8)]).to_csv(renamed, index=False)
    relabelled = load_dataset(renamed, label_column="label", id_column="id")
    np.testing.assert_array_equal(relabelled.fingerprints, ds.fingerprints)
    assert relabelled.fingerprint != ds.fingerprint  # IDs enter the data-set fingerprint


def test_csv_without_id_column_uses_row_numbers_and_hashes_every_column(csv_path):
    with_id = load_dataset(csv_path, label_column="label", id_column="id")
    ds = load_dataset(csv_path, label_column="label")
    assert ds.ids.tolist() == [str(i) for i in range(8)]
    assert "id=r0" in ds.feature_names  # no id column: 'id' is an ordinary column
    assert not np.any(ds.fingerprints == with_id.fingerprints)


def test_csv_drops_rows_with_missing_label(tmp_path):
    path = tmp_path / "holes.csv"
    path.write_text("a,b,label\n1,x,p\n2,y,?\n3,x,q\n4,y,\n5,x,p\n6,y,q\n7,x, NA \n8,y,p\n")
    with pytest.warns(DataWarning, match="Dropped 3 of 8 rows"):
        ds = load_dataset(path, label_column="label")
    assert ds.n_records == 5
    assert ds.ids.tolist() == ["0", "2", "4", "5", "7"]  # row numbers of the file
    assert ds.info["n_dropped_missing_label"] == 3
    assert ds.classes == ("p", "q")


def test_csv_numeric_labels_sort_numerically(tmp_path):
    path = tmp_path / "num.csv"
    path.write_text("f,label\n1,10\n2,2\n3,1\n4,10\n5,2\n")
    ds = load_dataset(path, label_column="label")
    assert ds.classes == ("1", "2", "10")
    np.testing.assert_array_equal(ds.y, [2, 1, 0, 2, 1])


def test_csv_gz_and_parquet_match_csv(tmp_path):
    frame = pd.DataFrame({
        "age": [30.0, 41.5, np.nan, 52.0, 23.0, 35.0, 47.0, 29.0],
        "city": ["Oslo", "Lima", None, "Oslo", "Pune", "Lima", "Oslo", None],
        "n": [1, 2, 3, 4, 5, 6, 7, 8],
        "flag": [True, False, True, True, False, False, True, False],
        "label": ["a", "b", "a", "b", "a", "b", "a", "b"],
    })
    csv, csv_gz, parquet = tmp_path / "t.csv", tmp_path / "t.csv.gz", tmp_path / "t.parquet"
    frame.to_csv(csv, index=False)
    frame.to_csv(csv_gz, index=False, compression="gzip")
    frame.to_parquet(parquet, index=False)
    base = load_dataset(csv, label_column="label")
    assert base.info["missing_per_column"] == {"age": 1, "city": 2}
    assert "flag=True" in base.feature_names
    for other in (csv_gz, parquet):
        ds = load_dataset(other, label_column="label")
        _assert_same_dataset(base, ds)
    assert load_dataset(parquet, label_column="label").info["format"] == "parquet"


def test_adult_style_whitespace_and_question_marks(tmp_path):
    path = tmp_path / "adult_like.csv"
    path.write_text("age, workclass, income\n39, State-gov, <=50K\n50, ?, >50K\n"
                    "38, Private, <=50K \n53, Private, >50K\n")
    ds = load_dataset(path, label_column="income")
    assert ds.classes == ("<=50K", ">50K")
    assert ds.feature_names == ("age", "workclass=Private", "workclass=State-gov",
                                f"workclass={MISSING_TOKEN}")
    assert ds.info["missing_per_column"] == {"workclass": 1}


# ---------------------------------------------------------------------------- Dataset methods


def test_duplicate_mask_marks_later_copies(tmp_path):
    X = np.array([[1, 2], [3, 4], [1, 2], [1, 2], [3, 4], [1, 2]], dtype=float)
    y = np.array([0, 0, 0, 0, 0, 1])  # the last row differs in label only: not a duplicate
    ds = load_dataset(_save_npz(tmp_path / "dup.npz", X=X, y=y))
    assert ds.duplicate_mask().tolist() == [False, False, True, True, True, False]


def test_subset_keeps_ids_and_fingerprints(tmp_path):
    ds = load_dataset(_small_npz(tmp_path, ids=np.array([f"id{i}" for i in range(12)])))
    idx = np.array([7, 2, 9])
    sub = ds.subset(idx)
    assert sub.ids.tolist() == ["id7", "id2", "id9"]
    np.testing.assert_array_equal(sub.fingerprints, ds.fingerprints[idx])
    np.testing.assert_array_equal(sub.X, ds.X[idx])
    np.testing.assert_array_equal(sub.y, ds.y[idx])
    assert sub.classes == ds.classes and sub.feature_names == ds.feature_names
    assert sub.fingerprint == dataset_fingerprint(sub.ids, sub.fingerprints) != ds.fingerprint
    assert sub.info["subset_of"] == ds.fingerprint and sub.info["n_records"] == 3
    mask = np.zeros(12, dtype=bool)
    mask[[2, 7, 9]] = True
    assert ds.subset(mask).ids.tolist() == ["id2", "id7", "id9"]
    assert ds.subset(np.arange(12)).fingerprint == ds.fingerprint
    assert "n_records=3" in repr(sub)


# ---------------------------------------------------------------------------- bad input


def _bad_cases(tmp: Path) -> dict[str, tuple[Path | str, dict, list[str]]]:
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(6, 3)), np.array([0, 1] * 3)
    nan_X = X.copy()
    nan_X[[2, 4], 1] = [np.nan, np.inf]
    (tmp / "notes.txt").write_text("hello")
    (tmp / "empty.csv").write_text("")
    (tmp / "header_only.csv").write_text("a,b,label\n")
    (tmp / "ragged.csv").write_text("a,label\n1,x\n2,y,3,4\n3,x\n4,y\n")
    (tmp / "garbage.parquet").write_bytes(b"definitely not parquet")
    (tmp / "bad.csv.gz").write_bytes(b"not gzip at all")
    (tmp / "table.csv").write_text("age,income,id\n" + "".join(
        f"{i},{'a' if i % 2 else 'b'},{i}\n" for i in range(6)))
    (tmp / "one_class.csv").write_text("a,label\n1,x\n2,x\n3,x\n4,x\n")
    (tmp / "dup_ids.csv").write_text("id,a,label\nk1,1,x\nk2,2,y\nk1,3,x\nk3,4,y\n")
    (tmp / "free_text.csv").write_text("note,label\n" + "".join(
        f"note number {i},{i % 2}\n" for i in range(1001)))
    (tmp / "inf.csv").write_text("a,label\n1,x\ninf,y\n3,x\n4,y\n")
    with gzip.open(tmp / "empty.csv.gz", "wb"):
        pass
    return {
        "not found": (tmp / "nowhere" / "data.csv", {}, ["not found", "nowhere"]),
        "unknown name": ("digts", {}, ["Unknown data set", "'digits'", "breast_cancer",
                                       ".csv.gz", ".parquet"]),
        "unsupported": (tmp / "notes.txt", {}, ["Unsupported file type", "notes.txt", ".npz"]),
        "npz no y": (_save_npz(tmp / "noy.npz", X=X, labels=y), {},
                     ["lacks", "'y'", "'X'", "'labels'"]),
        "npz no X": (_save_npz(tmp / "nox.npz", y=y), {}, ["lacks", "'X'"]),
        "X not 2-D": (_save_npz(tmp / "img.npz", X=np.zeros((6, 2, 2, 3)), y=y), {},
                      ["2-D", "(6, 2, 2, 3)", "reshape"]),
        "length": (_save_npz(tmp / "len.npz", X=X, y=np.array([0, 1] * 4)), {},
                   ["differ in length", "6", "8"]),
        "nan": (_save_npz(tmp / "nan.npz", X=nan_X, y=y), {},
                ["NaN", "2 row(s)", "first at row 2"]),
        "object arrays": (_save_npz(tmp / "obj.npz", X=X, y=np.array(list("abcdef"),
                                                                    dtype=object)),
                          {}, ["never unpickles"]),
        "label absent": (tmp / "table.csv", {"label_column": "incme"},
                         ["Label column 'incme' not found", "'age'", "Did you mean 'income'"]),
        "no label_column": (tmp / "table.csv", {}, ["label_column is required", "'income'"]),
        "id absent": (tmp / "table.csv", {"label_column": "income", "id_column": "ID"},
                      ["ID column 'ID' not found", "Did you mean 'id'"]),
        "one class": (tmp / "one_class.csv", {"label_column": "label"},
                      ["only one class", "'x'"]),
        "too few": (_save_npz(tmp / "few.npz", X=X[:3], y=y[:3]), {}, ["3 record", "at least 4"]),
        "duplicate ids": (tmp / "dup_ids.csv", {"label_column": "label", "id_column": "id"},
                          ["Duplicate record ID 'k1'", "unique"]),
        "duplicate npz ids": (_save_npz(tmp / "dupid.npz", X=X, y=y,
                                        ids=np.array(["a", "b", "c", "a", "d", "e"])),
                              {}, ["Duplicate record ID 'a'"]),
        "empty file": (tmp / "empty.csv", {"label_column": "label"}, ["empty"]),
        "empty gz": (tmp / "empty.csv.gz", {"label_column": "label"}, ["empty"]),
        "header only": (tmp / "header_only.csv", {"label_column": "label"}, ["empty"]),
        "parse error": (tmp / "ragged.csv", {"label_column": "label"},
                        ["Cannot parse", "ragged.csv", "CSV"]),
        "bad parquet": (tmp / "garbage.parquet", {"label_column": "label"},
                        ["Cannot parse", "Parquet"]),
        "bad gzip": (tmp / "bad.csv.gz", {"label_column": "label"}, ["Cannot parse"]),
        "free text": (tmp / "free_text.csv", {"label_column": "label"},
                      ["'note'", "1001 distinct", "--id-column note"]),
        "inf cell": (tmp / "inf.csv", {"label_column": "label"}, ["'a'", "infinite", "record 1"]),
        "no features": (_save_npz(tmp / "nofeat.npz", X=np.zeros((6, 0)), y=y), {},
                        ["no feature columns"]),
        "npz with label_column": (_save_npz(tmp / "ok.npz", X=X, y=y),
                                  {"label_column": "y"}, ["apply to CSV/parquet"]),
    }


BAD_CASE_NAMES = [
    "not found", "unknown name", "unsupported", "npz no y", "npz no X", "X not 2-D", "length",
    "nan", "object arrays", "label absent", "no label_column", "id absent", "one class",
    "too few", "duplicate ids", "duplicate npz ids", "empty file", "empty gz", "header only",
    "parse error", "bad parquet", "bad gzip", "npz with label_column", "free text", "inf cell",
    "no features",
]


@pytest.mark.parametrize("case", BAD_CASE_NAMES)
def test_bad_input_raises_data_error(case, tmp_path):
    cases = _bad_cases(tmp_path)
    assert set(cases) == set(BAD_CASE_NAMES)
    source, kwargs, words = cases[case]
    with pytest.raises(DataError) as info:
        load_dataset(source, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, f"{word!r} missing from: {message}"


def test_source_of_wrong_type_is_a_type_error():
    with pytest.raises(TypeError, match="source"):
        load_dataset(42)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- shared data


@pytest.mark.shared_data
@pytest.mark.skipif(not LOCATION30.exists(),
                    reason="../shared/data/location30.npz not found: shared benchmark data absent")
def test_location30_loads():
    ds = load_dataset(LOCATION30)
    assert ds.X.shape == (5010, 446)
    assert ds.n_classes == 30 and ds.classes == tuple(str(i) for i in range(30))
    assert set(np.unique(ds.X).tolist()) == {0.0, 1.0}  # used as given, not standardised
    counts = np.bincount(ds.y)
    assert counts.min() >= 97 and counts.max() <= 308


@pytest.mark.shared_data
@pytest.mark.skipif(not ADULT.exists(),
                    reason="../shared/data/adult.csv.gz not found: shared benchmark data absent")
def test_adult_loads():
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset(ADULT, label_column="income")
    elapsed = time.perf_counter() - start
    dropped = ds.info["n_dropped_missing_label"]
    assert ds.n_records == 48842 - dropped
    assert bool(dropped) == any(issubclass(w.category, DataWarning) for w in caught)
    assert ds.classes == ("<=50K", ">50K")
    assert ds.info["n_missing_values"] > 0
    assert ds.info["n_missing_values"] == sum(ds.info["missing_per_column"].values())
    assert set(ds.info["missing_per_column"]) == {"workclass", "occupation", "native_country"}
    assert len(ds.info["categorical_columns"]) == 8
    assert "workclass=Private" in ds.feature_names
    assert f"workclass={MISSING_TOKEN}" in ds.feature_names
    assert "income" not in " ".join(ds.feature_names)
    np.testing.assert_allclose(ds.X[:, ds.feature_names.index("age")].mean(), 0.0, atol=1e-5)
    assert elapsed < 10, f"loading Adult took {elapsed:.1f} s"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=-1e308, max_value=1e308, allow_nan=False), min_size=2,
                max_size=40))
def test_standardisation_never_overflows(values):
    """Finite values up to the float64 limit standardise to finite values (issue 17: 1e308
    in a CSV column overflowed the variance and trained on zeros); at moderate magnitudes
    the result is numpy's (x - mean) / std."""
    from miaudit.data._encoding import zscore

    v = np.asarray(values, dtype=np.float64).reshape(-1, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        scaled, mean, std = zscore(v)
    assert np.isfinite(scaled).all() and np.isfinite(mean).all() and np.isfinite(std).all()
    moderate = v / max(1.0, float(np.abs(v).max())) * 1e3
    scaled_m, mean_m, std_m = zscore(moderate)
    np.testing.assert_allclose(mean_m, moderate.mean(axis=0), rtol=1e-9, atol=1e-9)
    if std_m[0] > 0:
        np.testing.assert_allclose(scaled_m, (moderate - moderate.mean()) / moderate.std(),
                                   rtol=1e-6, atol=1e-9)


def test_a_huge_csv_value_is_audited_and_written(tmp_path):
    import miaudit

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300),
                          "y": rng.integers(0, 2, 300)})
    frame.loc[3, "a"] = 1e308
    frame.to_csv(tmp_path / "big.csv", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        ds = load_dataset(tmp_path / "big.csv", label_column="y")
    assert np.isfinite(ds.X).all() and np.abs(ds.X[:, 1]).max() < 10
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        warnings.simplefilter("ignore", UserWarning)
        result = miaudit.audit(data=ds, model="logistic", attacks=["loss"])
    json.dumps(result.summary(), allow_nan=False)  # no inf left in the summary
    result.save(tmp_path / "run")


@pytest.mark.parametrize("fmt", ["csv", "parquet", "npz"])
def test_labels_that_are_not_classes_are_refused_in_every_format(tmp_path, fmt):
    """A continuous or nearly all-unique label column is refused, whatever the format
    (issue 17: a CSV with 279 labels for 296 records was audited)."""
    rng = np.random.default_rng(0)
    n = 296
    X = rng.normal(size=(n, 3))
    cases = {"fractional": np.round(rng.normal(size=n), 2),
             "unique": rng.permutation(n)[:n] % 279}
    for what, y in cases.items():
        path = tmp_path / f"{what}.{fmt}"
        if fmt == "npz":
            if what == "fractional":
                continue  # refused already by the npz loader (non-integer float labels)
            np.savez(path, X=X, y=y)
        else:
            frame = pd.DataFrame(X, columns=["a", "b", "c"]).assign(y=y)
            frame.to_csv(path, index=False) if fmt == "csv" else frame.to_parquet(path)
        kwargs = {} if fmt == "npz" else {"label_column": "y"}
        match = "fractional part" if what == "fractional" else "distinct values for 296"
        with pytest.raises(DataError, match=match):
            load_dataset(path, **kwargs)
    # integer-valued labels written as floats, and 30 classes on 300 records, are classes
    frame = pd.DataFrame(X[:, :2], columns=["a", "b"]).assign(y=(np.arange(n) % 30) * 1.0)
    frame.to_csv(tmp_path / "ok.csv", index=False)
    assert load_dataset(tmp_path / "ok.csv", label_column="y").n_classes == 30


def test_nested_parquet_columns_are_refused(tmp_path):
    """A struct or list column is refused with its name (issue 17: a struct column became
    100 one-hot features)."""
    rng = np.random.default_rng(0)
    n = 100
    base = pd.DataFrame({"a": rng.normal(size=n), "y": rng.integers(0, 2, n)})
    for name, column in (("point", [{"x": float(i), "y": 1.0} for i in range(n)]),
                         ("tags", [[i, i + 1] for i in range(n)])):
        base.assign(**{name: column}).to_parquet(tmp_path / f"{name}.parquet")
        with pytest.raises(DataError, match=f"Column '{name}' holds nested values"):
            load_dataset(tmp_path / f"{name}.parquet", label_column="y")


def test_a_numeric_column_with_stray_text_names_the_cells(tmp_path):
    rng = np.random.default_rng(0)
    n = 400
    values = rng.normal(size=n).round(3).astype(str).astype(object)
    values[[7, 123]] = ["oops", "n.a."]
    frame = pd.DataFrame({"a": values, "b": rng.normal(size=n), "y": rng.integers(0, 2, n)})
    frame.to_csv(tmp_path / "stray.csv", index=False)
    with pytest.raises(DataError, match=r"numeric but for 2 cell\(s\): 'oops' \(record 7\), "
                                        r"'n\.a\.' \(record 123\)"):
        load_dataset(tmp_path / "stray.csv", label_column="y")
    # a real categorical column (few numbers among words) stays categorical
    words = np.array(["red", "green", "blue", "7"], dtype=object)[rng.integers(0, 4, n)]
    frame.assign(a=words).to_csv(tmp_path / "words.csv", index=False)
    assert load_dataset(tmp_path / "words.csv", label_column="y").n_features >= 4
