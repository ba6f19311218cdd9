"""Fuzzing the loaders (issue 17, item 2): any input ends in a result or a MiauditError.

Each property feeds generated files or text to one loader, which must return a valid result
or raise a :class:`miaudit.errors.MiauditError` with a one-line message. Any other exception
(ValueError, UnicodeDecodeError, pyarrow errors, RecursionError, MemoryError, ...) fails, and
so does a RuntimeWarning (an overflow: a silently wrong number). Escapes the fuzzing found
are pinned as ``@example`` s and, crafted, at the end.
"""

from __future__ import annotations

import csv
import datetime
import gzip
import io
import json
import math
import time
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import yaml
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from miaudit.data import MIN_RECORDS, Dataset, load_dataset
from miaudit.errors import ConfigError, DataError, MiauditError, MiauditWarning, OutputError
from miaudit.governance.forget import load_id_list
from miaudit.governance.policy import METRICS, Policy, load_policy, parse_policy
from miaudit.spec import AuditSpec, load_spec, parse_spec
from miaudit.spec.schema import AuditSection, DataSection, LMSection, TargetSection, TrainingSection
from miaudit.targets import PrecomputedOutputs, load_outputs

T = TypeVar("T")

#: Seconds a spec or policy may take to load on a loaded 2-core machine (~1 s expected).
TIME_LIMIT_S = 5.0

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
QUICK = settings(FUZZ, max_examples=60)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for the generated files (module-scoped: hypothesis reruns the test body)."""
    return tmp_path_factory.mktemp("fuzz")


def _outcome(call: Callable[[], T], *, limit_s: float | None = None) -> T | None:
    """``call()``'s result, or None when it raised a one-line MiauditError; any other
    exception, and any RuntimeWarning, propagates and fails the test."""
    start = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MiauditWarning)
        warnings.simplefilter("error", RuntimeWarning)
        try:
            result: T | None = call()
        except MiauditError as exc:
            text = str(exc)
            assert text.strip() and "\n" not in text, f"not a one-line message: {text!r}"
            result = None
    if limit_s is not None:
        assert time.monotonic() - start < limit_s, "the loader took too long"
    return result


def _write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def _check_dataset(ds: Dataset | None) -> None:
    """The invariants of every loaded data set."""
    if ds is None:
        return
    assert ds.X.dtype == np.float32 and ds.X.ndim == 2 and np.isfinite(ds.X).all()
    assert ds.y.dtype == np.int64 and ds.y.shape == (ds.n_records,) == (len(ds.X),)
    assert ds.n_records >= MIN_RECORDS and ds.n_classes >= 2
    assert ds.y.min() >= 0 and ds.y.max() < ds.n_classes
    assert len(ds.ids) == ds.n_records == len(set(ds.ids.tolist()))
    assert len(ds.fingerprints) == ds.n_records
    assert len(ds.feature_names) == ds.X.shape[1] >= 1


# ------------------------------------------------------------------------------- CSV

SPECIAL_CELLS = [
    "", " ", "?", "NA", "n/a", "nan", "NaN", "null", "<NA>", "None", "inf", "-inf",
    "Infinity", "1e308", "-1e308", "1e309", "-0.0", "0", "1", "1.5", "1e-320", "0x1A",
    "1_000", "١٢", "true", '"', '""', "'", ",", "a,b", "\n", "\r\n", "\r", " 7 ", "\ufeff",
    "#", "é", "€", "\x00", "\t",
]
TEXT = st.text(st.characters(codec="utf-8"), max_size=6)
CELLS = st.one_of(st.sampled_from(SPECIAL_CELLS), st.integers(-(2**70), 2**70).map(str),
                  st.floats().map(repr), TEXT)
LABEL_CELLS = st.sampled_from(["0", "1", "2", "a", "b", "", "NA", "1.0", "1.5", " 1", "-0"])
NAMES = ["label", "a", "b", "id", "", " label", "Unnamed: 0", "label.1", "é"]


def _csv_text(rows: list[list[str]], quote: bool) -> str:
    if not quote:
        return "".join(",".join(r) + "\n" for r in rows)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[list[str]], str, str | None]:
    """Rows (header first) of a CSV table, its label column and an ID column (or None)."""
    header = draw(st.lists(st.sampled_from(NAMES) | TEXT, min_size=1, max_size=5))
    width = len(header)
    label_at = draw(st.none() | st.integers(0, width - 1))  # a column of class-like values
    shape = draw(st.integers(0, 9))  # 0: ragged rows, 1: every row one field longer
    low, high = {0: (width - 1, width + 1), 1: (width + 1, width + 1)}.get(shape, (width, width))
    row = st.lists(CELLS, min_size=low, max_size=high)
    rows = draw(st.lists(row, max_size=25))
    for r in rows if label_at is not None else []:
        r[label_at:label_at + 1] = [draw(LABEL_CELLS)] * (label_at < len(r))
    label = draw(st.sampled_from([*header, "label", "absent"]))
    id_column = draw(st.none() | st.sampled_from(header))
    return [header, *rows], label, id_column


#: Random bytes, or random text (as UTF-8) after a header line.
BYTES = st.binary(max_size=300) | st.text(st.characters(codec="utf-8"), max_size=300).map(
    lambda t: ("label,a\n" + t).encode("utf-8"))


@settings(FUZZ, max_examples=250)
@given(data=BYTES, gz=st.booleans(), compress=st.booleans())
@example(data=b"a,b\n\xff\xfe,1\n", gz=False, compress=False)
def test_csv_random_bytes_and_text(work: Path, data: bytes, gz: bool, compress: bool) -> None:
    name = "bytes.csv.gz" if gz else "bytes.csv"
    path = _write(work / name, gzip.compress(data) if gz and compress else data)
    _check_dataset(_outcome(lambda: load_dataset(path, label_column="label")))


@settings(FUZZ, max_examples=200)
@given(table=tables(), quote=st.booleans(), gz=st.booleans())
def test_csv_random_tables(work: Path, table: tuple, quote: bool, gz: bool) -> None:
    rows, label, id_column = table
    data = _csv_text(rows, quote).encode("utf-8")
    path = _write(work / ("table.csv.gz" if gz else "table.csv"),
                  gzip.compress(data) if gz else data)
    _check_dataset(_outcome(lambda: load_dataset(path, label_column=label,
                                                 id_column=id_column)))


@FUZZ
@given(n=st.integers(MIN_RECORDS, 40),
       kind=st.sampled_from(["binary", "single", "unique", "fractional", "absent", "dup"]),
       features=st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=40,
                         max_size=40))
@example(n=4, kind="dup", features=[0.0] * 40)  # pandas renamed it label.1
def test_csv_label_column_cases(work: Path, n: int, kind: str, features: list[float]) -> None:
    """Labels that are not a usable set of classes are refused, never audited."""
    labels = {"binary": [str(i % 2) for i in range(n)], "single": ["x"] * n,
              "unique": [f"c{i}" for i in range(n)], "fractional": [f"{i % 3}.5" for i in range(n)],
              "absent": ["0", "1"] * (n // 2) + ["0"] * (n % 2),
              "dup": [str(i % 2) for i in range(n)]}[kind]
    header = {"absent": ["a", "target"], "dup": ["a", "label", "label"]}.get(kind, ["a", "label"])
    rows = [header] + [[repr(f), lab, lab][: len(header)]
                       for f, lab in zip(features, labels, strict=False)]
    path = _write(work / "labels.csv", _csv_text(rows, quote=True))
    ds = _outcome(lambda: load_dataset(path, label_column="label"))
    _check_dataset(ds)
    refused = kind in ("single", "fractional", "absent", "dup") or (kind == "unique" and n > 20)
    assert (ds is None) == refused, (kind, n)


# ------------------------------------------------------------------------------- .npz


class _Tripwire:
    """An object whose unpickling is recorded: loaders must never unpickle."""

    unpickled = False

    def __init__(self) -> None:
        self.armed = True  # state, so that unpickling calls __setstate__

    def __setstate__(self, state: Any) -> None:
        type(self).unpickled = True


DTYPES = st.one_of(
    hnp.integer_dtypes(), hnp.unsigned_integer_dtypes(), hnp.floating_dtypes(),
    hnp.boolean_dtypes(), hnp.complex_number_dtypes(), hnp.byte_string_dtypes(max_len=4),
    hnp.unicode_string_dtypes(max_len=4), hnp.datetime64_dtypes(), hnp.timedelta64_dtypes(),
)
SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=8)
ARRAYS = DTYPES.flatmap(lambda dt: hnp.arrays(dt, SHAPES))
OBJECTS = st.lists(st.integers() | TEXT, max_size=6).map(
    lambda v: np.array([*v, _Tripwire()], dtype=object))


def _npz_bytes(arrays: dict[str, np.ndarray], compressed: bool = False) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


@st.composite
def npz_arrays(draw: st.DrawFn, keys: list[str]) -> dict[str, np.ndarray]:
    """Arrays under some of ``keys``: random dtypes and shapes, now and then objects."""
    chosen = draw(st.lists(st.sampled_from(keys), unique=True, max_size=len(keys)))
    return {k: draw(OBJECTS if draw(st.integers(0, 12)) == 0 else ARRAYS) for k in chosen}


DATA_KEYS = ["X", "y", "ids", "jpeg", "offsets", "is_test", "classes", "other"]


@settings(FUZZ, max_examples=150)
@given(arrays=npz_arrays(DATA_KEYS), compressed=st.booleans())
def test_npz_random_arrays(work: Path, arrays: dict[str, np.ndarray], compressed: bool) -> None:
    path = _write(work / "arrays.npz", _npz_bytes(arrays, compressed))
    _check_dataset(_outcome(lambda: load_dataset(path)))
    assert not _Tripwire.unpickled


@st.composite
def plausible_npz(draw: st.DrawFn) -> dict[str, np.ndarray]:
    """X (N, D) and y (N,) of matching length and random dtypes, with optional ids."""
    n, d = draw(st.integers(0, 12)), draw(st.integers(0, 4))
    out = {"X": draw(hnp.arrays(DTYPES, (n, d))), "y": draw(hnp.arrays(DTYPES, (n,)))}
    if draw(st.booleans()):
        out["ids"] = draw(hnp.arrays(DTYPES, (n,)))
    return out


@FUZZ
@given(arrays=plausible_npz())
@example(arrays={"X": np.array([[3.4e38]]), "y": np.array([0])})  # overflow warning
@example(arrays={"X": np.zeros((1, 1)), "y": np.array([9.2e18], np.float32)})  # wrong label
def test_npz_plausible_arrays(work: Path, arrays: dict[str, np.ndarray]) -> None:
    path = _write(work / "plausible.npz", _npz_bytes(arrays))
    _check_dataset(_outcome(lambda: load_dataset(path)))


#: A cut (keep this many bytes) or some (position, byte) overwrites.
DAMAGE = st.integers(0, 4000) | st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255)),
                                         min_size=1, max_size=8)


def _damage(data: bytes, damage: int | list[tuple[int, int]]) -> bytes:
    """``data`` cut after ``damage`` bytes, or with (position, byte) pairs written."""
    if isinstance(damage, int):
        return data[:damage]
    out = bytearray(data)
    for pos, byte in damage:
        out[pos % len(out)] = byte
    return bytes(out)


VALID_NPZ = {"X": np.arange(24, dtype=np.float64).reshape(8, 3), "y": np.arange(8) % 2,
             "ids": np.array([f"r{i}" for i in range(8)])}


@FUZZ
@given(damage=DAMAGE, garbage=st.binary(max_size=200), compressed=st.booleans())
# Damage that raised BadZipFile (bad CRC-32), zlib.error, EOFError, OSError (invalid argument;
# invalid data stream), NotImplementedError (strong encryption; compressed patched data):
@example(damage=[(165, 132), (3954, 248)], garbage=b"", compressed=False)
@example(damage=[(3964, 244), (1466, 111)], garbage=b"", compressed=True)
@example(damage=[(3318, 62), (2125, 96), (156, 200)], garbage=b"", compressed=False)
@example(damage=[(3181, 146), (2090, 217), (1917, 99)], garbage=b"", compressed=False)
@example(damage=[(3586, 92), (1780, 12), (3625, 12)], garbage=b"", compressed=True)
@example(damage=[(3862, 255), (3776, 90), (1634, 103)], garbage=b"", compressed=True)
@example(damage=[(3827, 180), (1309, 222)], garbage=b"", compressed=True)
def test_npz_damaged_or_garbage_bytes(work: Path, damage: int | list, garbage: bytes,
                                      compressed: bool) -> None:
    damaged = _damage(_npz_bytes(VALID_NPZ, compressed), damage)
    for i, content in enumerate((garbage, damaged)):
        path = _write(work / f"damaged{i}.npz", content)
        _check_dataset(_outcome(lambda p=path: load_dataset(p)))


# ------------------------------------------------------------------------------- Parquet

PARQUET_CELLS: dict[str, st.SearchStrategy] = {
    "int": st.integers(-(2**63), 2**63 - 1), "float": st.floats(), "text": st.none() | TEXT,
    "bool": st.booleans(), "null": st.none(), "bytes": st.binary(max_size=4),
    "list": st.none() | st.lists(st.integers(0, 9), max_size=3),
    "struct": st.fixed_dictionaries({"k": st.integers(0, 3)}),
    "mixed": st.integers(0, 9) | TEXT | st.floats(), "label": st.sampled_from(["0", "1", "a"]),
    "category": st.sampled_from("xyz"), "datetime": st.integers(0, 2**40),
    "nullable_int": st.none() | st.integers(-9, 9),
}
PARQUET_TYPES: dict[str, Callable] = {
    "category": pd.Categorical, "datetime": lambda v: pd.to_datetime(v, unit="s"),
    "nullable_int": lambda v: pd.array(v, dtype="Int64")}


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    """A DataFrame of 0-12 rows with flat, nested, binary, all-null and mixed columns."""
    n = draw(st.integers(0, 12))
    kinds = draw(st.lists(st.sampled_from(sorted(PARQUET_CELLS)), min_size=1, max_size=5))
    columns: dict[str, Any] = {}
    for i, kind in enumerate(kinds):
        name = draw(st.sampled_from(["label", "a", "b", "id"]))
        values = draw(st.lists(PARQUET_CELLS[kind], min_size=n, max_size=n))
        columns[name if name not in columns else f"{name}_{i}"] = PARQUET_TYPES.get(
            kind, list)(values)
    return pd.DataFrame(columns)


@settings(FUZZ, max_examples=120)
@given(frame=frames(), label=st.sampled_from(["label", "a", "id"]),
       id_column=st.none() | st.just("id"))
@example(frame=pd.DataFrame({"label": ["0"], "b": [b"\x80"]}), label="label",
         id_column=None)  # UnicodeDecodeError
def test_parquet_random_frames(work: Path, frame: pd.DataFrame, label: str,
                               id_column: str | None) -> None:
    path = work / "frame.parquet"
    try:
        frame.to_parquet(path)
    except (pa.ArrowException, ValueError, TypeError):  # pyarrow cannot write it: no input
        assume(False)
    _check_dataset(_outcome(lambda: load_dataset(path, label_column=label,
                                                 id_column=id_column)))


@QUICK
@given(damage=DAMAGE, garbage=st.binary(max_size=200))
@example(damage=[(158, 128)], garbage=b"")  # invalid UTF-8 in a text column (found in CI)
def test_parquet_damaged_or_garbage_bytes(work: Path, damage: int | list,
                                          garbage: bytes) -> None:
    buf = io.BytesIO()
    pd.DataFrame({"a": np.arange(8.0), "label": ["x", "y"] * 4}).to_parquet(buf)
    for i, content in enumerate((garbage, _damage(buf.getvalue(), damage))):
        path = _write(work / f"damaged{i}.parquet", content)
        _check_dataset(_outcome(lambda p=path: load_dataset(p, label_column="label")))


# ------------------------------------------------------------------------------- specs

SPEC_KEYS = sorted({k for m in (AuditSpec, DataSection, TargetSection, AuditSection,
                                 TrainingSection, LMSection) for k in m.model_fields})
SCALARS = st.one_of(
    st.booleans(), st.integers(-(2**64), 2**64), st.floats(), TEXT,
    st.sampled_from(["digits", "wine", "mlp", "logistic", "lm", "classification", "loss",
                     "logits", "labels", "top-k:1", "~nobody_at_all/x.csv", "a\x00b", "cpu",
                     "data.csv", "/", "..", ""]),
    st.dates(), st.datetimes(),
)
KEYS = st.sampled_from([*SPEC_KEYS, "epochs", "hidden"]) | TEXT
TREES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(KEYS, inner, max_size=4), max_leaves=14)
DOCS = st.dictionaries(KEYS, TREES, max_size=6)
SECTIONS = {"data": DataSection, "target": TargetSection, "audit": AuditSection,
            "training": TrainingSection, "lm": LMSection}


@st.composite
def near_valid_specs(draw: st.DrawFn) -> dict:
    """A valid spec with 1-3 settings set to random values."""
    doc: dict[str, dict] = {"data": {"source": "digits"}, "target": {"recipe": "logistic"}}
    for _ in range(draw(st.integers(1, 3))):
        section = draw(st.sampled_from(sorted(SECTIONS)))
        key = draw(st.sampled_from(sorted(SECTIONS[section].model_fields)))
        doc.setdefault(section, {})[key] = draw(TREES)
    return doc


def _toml_key(key: str) -> str:
    bare = key and all(c.isascii() and (c.isalnum() or c in "_-") for c in key)
    return key if bare else json.dumps(key, ensure_ascii=False)


def _toml_value(v: Any) -> str:
    """A TOML value (inline tables and arrays for containers)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) \
            else repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, datetime.date):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(map(_toml_value, v)) + "]"
    return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"


def _toml_doc(doc: dict) -> str:
    """A TOML document: top-level dicts as [tables], lists of dicts as [[arrays]]."""
    lines, tables = [], []
    for k, v in doc.items():
        if isinstance(v, dict) or (isinstance(v, list) and v
                                   and all(isinstance(x, dict) for x in v)):
            tables.append((k, v))
        else:
            lines.append(f"{_toml_key(k)} = {_toml_value(v)}")
    for k, v in tables:
        for item in v if isinstance(v, list) else [v]:
            lines.append(f"[[{_toml_key(k)}]]" if isinstance(v, list) else f"[{_toml_key(k)}]")
            lines.extend(f"{_toml_key(kk)} = {_toml_value(x)}" for kk, x in item.items())
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module", autouse=True)
def _warm_imports() -> None:
    """Import what validating a spec imports, so the time bounds measure the parsing."""
    parse_spec("[data]\nsource = 'digits'\n[target]\nrecipe = 'mlp'\n")


def _check_spec(text: str, fmt: str, base: Path | None = None) -> None:
    spec = _outcome(lambda: parse_spec(text, fmt, base_dir=base, check_files=base is not None),
                    limit_s=TIME_LIMIT_S)
    assert spec is None or isinstance(spec, AuditSpec)


@settings(FUZZ, max_examples=200)
@given(doc=DOCS | near_valid_specs(), fmt=st.sampled_from(["toml", "yaml", "yaml-flow"]))
@example(doc={"\n": []}, fmt="toml")  # a two-line message
@example(doc={"data": {"source": "a\nb.csv"}}, fmt="yaml")  # a two-line message
@example(doc={"data": {"source": "~nobody_at_all/x.csv"}}, fmt="toml")  # RuntimeError
def test_spec_random_structures(work: Path, doc: dict, fmt: str) -> None:
    if fmt == "toml":
        text = _toml_doc(doc)
    else:
        text = yaml.safe_dump(doc, allow_unicode=True, default_flow_style=fmt == "yaml-flow")
    _check_spec(text, fmt[:4], base=work)


@QUICK
@given(depth=st.integers(1, 14), width=st.integers(1, 12), merge=st.booleans(),
       place=st.sampled_from(["data", "audit", "thresholds", "top"]))
def test_spec_yaml_alias_bombs(depth: int, width: int, merge: bool, place: str) -> None:
    lines = ["a0: &a0 {x: 1}" if merge else "a0: &a0 [x, y]"]
    for i in range(1, depth + 1):
        refs = ", ".join([f"*a{i - 1}"] * width)
        lines.append(f"a{i}: &a{i} " + (f"{{<<: [{refs}], z{i}: 1}}" if merge else f"[{refs}]"))
    lines += [] if place == "top" else [f"{place}: {{bomb: *a{depth}}}"]
    _check_spec("\n".join(lines) + "\n", "yaml")


@settings(FUZZ, max_examples=250)
@given(data=BYTES.map(lambda b: b.removeprefix(b"label,a\n")),
       suffix=st.sampled_from([".toml", ".yaml", ".yml"]))
@example(data=b"\xff", suffix=".toml")
@example(data=b"\x1f", suffix=".yaml")  # a two-line message
def test_spec_random_bytes_and_text(work: Path, data: bytes, suffix: str) -> None:
    path = _write(work / f"spec{suffix}", data)
    spec = _outcome(lambda: load_spec(path), limit_s=TIME_LIMIT_S)
    assert spec is None or isinstance(spec, AuditSpec)


# ------------------------------------------------------------------------------- policies

RULE_VALUES = {
    "name": TEXT,
    "metric": st.sampled_from([*METRICS, "AUC", ""]) | TEXT,
    "fpr": st.floats() | st.integers(-2, 2) | TEXT,
    "attacks": st.sampled_from(["*", "loss", " * "]) | st.lists(TEXT, max_size=3) | st.integers(),
    "use": st.sampled_from(["value", "upper", "lower", "max"]),
    "max": st.floats() | st.integers(-(2**64), 2**64),
    "max_records": st.integers(-(2**64), 2**64) | st.floats(),
    "when_unmeasurable": st.sampled_from(["fail", "pass", "skip"]),
    "extra": TREES,
}


@st.composite
def policy_docs(draw: st.DrawFn) -> dict:
    rule = st.fixed_dictionaries({}, optional=RULE_VALUES)
    doc: dict[str, Any] = {"rule": draw(st.lists(rule, max_size=4)), "name": draw(TEXT)}
    if draw(st.integers(0, 4)) == 0:
        doc.update(draw(DOCS))
    return doc


@settings(FUZZ, max_examples=150)
@given(doc=policy_docs())
def test_policy_random_structures(doc: dict) -> None:
    policy = _outcome(lambda: parse_policy(_toml_doc(doc)), limit_s=TIME_LIMIT_S)
    if policy is not None:
        assert isinstance(policy, Policy) and policy.rules
        assert all(math.isfinite(r.max) and r.max >= 0 for r in policy.rules)


@FUZZ
@given(data=BYTES.map(lambda b: b.removeprefix(b"label,a\n")))
def test_policy_random_bytes_and_text(work: Path, data: bytes) -> None:
    _outcome(lambda: load_policy(_write(work / "policy.toml", data)), limit_s=TIME_LIMIT_S)


# ------------------------------------------------------------------------------- outputs

OUTPUT_KEYS = ["logits", "probs", "y", "is_member", "ids", "fingerprints", "other"]


@st.composite
def plausible_outputs(draw: st.DrawFn) -> dict[str, np.ndarray]:
    """logits or probs (N, C), y (N,), is_member (N,) of random dtypes; NaN and inf too."""
    n, c = draw(st.integers(0, 10)), draw(st.integers(0, 4))
    kind = draw(st.sampled_from(["logits", "probs"]))
    floats = hnp.arrays(hnp.floating_dtypes(), (n, c), elements={"allow_nan": True})
    out = {kind: draw(floats | hnp.arrays(DTYPES, (n, c))),
           "y": draw(hnp.arrays(hnp.integer_dtypes(), (n,), elements=st.integers(-1, c))
                     | hnp.arrays(DTYPES, (n,))),
           "is_member": draw(hnp.arrays(np.bool_, (n,)) | hnp.arrays(DTYPES, (n,)))}
    for key in ("ids", "fingerprints"):
        if draw(st.booleans()):
            out[key] = draw(hnp.arrays(DTYPES, (n,)) | OBJECTS)
    return out


def _check_outputs(pre: PrecomputedOutputs | None) -> None:
    if pre is None:
        return
    n = pre.outputs.n_records
    assert pre.outputs.n_classes >= 2 and np.isfinite(pre.outputs.values).all()
    assert pre.labels.shape == pre.is_member.shape == pre.ids.shape == (n,)
    assert pre.labels.dtype == np.int64 and pre.is_member.dtype == bool
    assert n >= 1 and pre.labels.min() >= 0 and pre.labels.max() < pre.outputs.n_classes


@settings(FUZZ, max_examples=150)
@given(arrays=plausible_outputs() | npz_arrays(OUTPUT_KEYS))
@example(arrays={"probs": np.zeros((0, 2)), "y": np.zeros(0, np.int8),
                 "is_member": np.zeros(0, bool)})  # ValueError from y.min()
@example(arrays={"logits": np.zeros((1, 2)), "y": np.array(["NaT"], "m8[Y]"),
                 "is_member": np.zeros(1, bool)})  # label -2**63 accepted
def test_outputs_random_arrays(work: Path, arrays: dict[str, np.ndarray]) -> None:
    path = _write(work / "outputs.npz", _npz_bytes(arrays))
    _check_outputs(_outcome(lambda: load_outputs(path)))
    assert not _Tripwire.unpickled


VALID_OUTPUTS = {"logits": np.zeros((6, 3)), "y": np.arange(6) % 3,
                 "is_member": np.arange(6) % 2 == 0}


@QUICK
@given(damage=DAMAGE, garbage=st.binary(max_size=200))
def test_outputs_damaged_or_garbage_bytes(work: Path, damage: int | list,
                                          garbage: bytes) -> None:
    for i, content in enumerate((garbage, _damage(_npz_bytes(VALID_OUTPUTS), damage))):
        path = _write(work / f"outputs{i}.npz", content)
        _check_outputs(_outcome(lambda p=path: load_outputs(p)))


# ------------------------------------------------------------------------------- ID lists


@FUZZ
@given(data=st.binary(max_size=300) | st.text(max_size=100).map(
    lambda t: t.encode("utf-8", "surrogatepass")))
def test_id_list_random_bytes(work: Path, data: bytes) -> None:
    path = _write(work / "ids.txt", data)
    ids = _outcome(lambda: load_id_list(path)) or []
    assert all(isinstance(i, str) and i and i == i.strip() and "#" not in i for i in ids)


# ------------------------------------------------------------------------------- escapes
# Inputs that escaped the package's errors (found by the fuzzing, or crafted from what it
# found) before the loaders were fixed; each now ends in the error named.


def _patched(data: bytes, local: int, central: int, value: int) -> bytes:
    """A zip with a 16-bit field of its first member's headers set (-1: flag bit 0 set)."""
    out = bytearray(data)
    for off in (out.index(b"PK\x03\x04") + local, out.index(b"PK\x01\x02") + central):
        old = int.from_bytes(out[off:off + 2], "little")
        out[off:off + 2] = (old | 1 if value == -1 else value).to_bytes(2, "little")
    return bytes(out)


def _npy_header(shape: tuple, descr: str = "<f8") -> bytes:
    text = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape!r}, }}"
    text += " " * (63 - (len(text) + 10) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode()


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _jpeg_bomb() -> dict[str, np.ndarray]:
    """A JPEG image archive whose images claim 60000 x 60000 pixels."""
    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0") + 5
    data[sof:sof + 4] = (60000).to_bytes(2, "big") * 2
    return {"jpeg": np.frombuffer(bytes(data) * 2, np.uint8),
            "offsets": np.array([0, len(data), 2 * len(data)]), "y": np.array([0, 1])}


XY = {"X": np.arange(24.0).reshape(8, 3), "y": np.arange(8) % 2}
BOMB = {"X.npy": _npy_header((10**7, 10**6)) + bytes(16), "y.npy": _npy_header((10**7,))}
LOW = np.arange(4) % 2
NOT_UTF8 = np.array([b"\x80", b"a", b"b", b"c"])
#: name: (loader, file name, content, keyword arguments, error, words of the message).
ESCAPES: dict[str, tuple[Callable, str, Any, dict, type, str]] = {
    "CSV names repeated (pandas renamed one 'a.1')": (
        load_dataset, "dup.csv", b"a,a,label\n1,2,x\n3,4,y\n5,6,x\n7,8,y\n",
        {"label_column": "label"}, DataError, "'a' appears twice"),
    "CSV rows one field longer than the header (the first column became the index)": (
        load_dataset, "short.csv", b"a,label\n" + b"".join(
            b"%d,%d,%s\n" % (i, 10 * i, b"xy"[i % 2:][:1]) for i in range(6)),
        {"label_column": "label"}, DataError, "Expected 2 fields in line 2"),
    "npz y of non-UTF-8 bytes (UnicodeDecodeError)": (
        load_dataset, "yb.npz", {"X": np.zeros((4, 1)), "y": NOT_UTF8}, {}, DataError,
        "y in yb.npz holds bytes that are not UTF-8 text at record 0"),
    "npz ids of non-UTF-8 bytes (UnicodeDecodeError)": (
        load_dataset, "ib.npz", {"X": np.zeros((4, 1)), "y": LOW, "ids": NOT_UTF8}, {},
        DataError, "ids in ib.npz holds bytes that are not UTF-8"),
    "npz member encrypted (RuntimeError)": (
        load_dataset, "enc.npz", _patched(_npz_bytes(XY), 6, 8, -1), {}, DataError,
        "'X.npy' of enc.npz is encrypted"),
    "npz member compressed with method 99 (NotImplementedError)": (
        load_dataset, "meth.npz", _patched(_npz_bytes(XY), 8, 10, 99), {}, DataError,
        "compression method is not supported"),
    "npz zip version 6.4 (NotImplementedError)": (
        load_dataset, "ver.npz", _patched(_npz_bytes(XY), 4, 6, 64), {}, DataError,
        "zip file version 6.4"),
    "npz header claims 80 TB (MemoryError)": (
        load_dataset, "bomb.npz", _zip(BOMB), {}, DataError, "claims shape (10000000, 1000000)"),
    "a single .npy named .npz, header claims 80 TB (MemoryError)": (
        load_dataset, "npy.npz", BOMB["X.npy"], {}, DataError, "holds a single .npy array"),
    "JPEG archive without classes, class code 2**40 (hang)": (
        load_dataset, "img.npz", {"jpeg": np.zeros(10, np.uint8), "offsets": np.array([0, 5]),
                                  "y": np.array([2**40])}, {}, DataError,
        "class code 1099511627776"),
    "JPEG archive of 60000 x 60000 images (DecompressionBombError)": (
        load_dataset, "jb.npz", _jpeg_bomb(), {}, DataError,
        "Image 0 in jb.npz is not a readable JPEG"),
    "outputs with complex logits (imaginary part dropped)": (
        load_outputs, "oc.npz", {"logits": np.array([[1 + 1j, 0]] * 4), "y": LOW,
                                 "is_member": LOW == 0}, {}, OutputError,
        "must be real numbers, got dtype complex128"),
    "outputs with datetime logits (read as days since 1970)": (
        load_outputs, "od.npz", {"logits": np.zeros((4, 2), "M8[D]"), "y": LOW,
                                 "is_member": LOW == 0}, {}, OutputError,
        "must be real numbers, got dtype datetime64[D]"),
    "outputs ids of non-ASCII bytes (UnicodeDecodeError)": (
        load_outputs, "oi.npz", {"logits": np.zeros((4, 2)), "y": LOW, "is_member": LOW == 0,
                                 "ids": NOT_UTF8}, {}, DataError,
        "'ids' holds bytes that are not UTF-8"),
    "outputs members without an .npy header (AttributeError)": (
        load_outputs, "or.npz", _zip({"logits": b"ab", "y": b"cd", "is_member": b"ef"}), {},
        DataError, "'y' must be a 1-D integer array"),
}


@pytest.mark.parametrize("case", list(ESCAPES))
def test_escapes_found_by_fuzzing_end_in_a_package_error(work: Path, case: str) -> None:
    loader, name, content, kwargs, error, words = ESCAPES[case]
    path = work / name
    if isinstance(content, dict):
        np.savez(path, **content)
    else:
        path.write_bytes(content)
    start = time.monotonic()
    with pytest.raises(error) as info:
        loader(path, **kwargs)
    assert words in str(info.value) and "\n" not in str(info.value)
    assert time.monotonic() - start < TIME_LIMIT_S


def test_integer_float_labels_beyond_int64_keep_their_value(work: Path) -> None:
    """y = 9.3e18 (float32) was cast to int64 and became -9223372036854775808."""
    np.savez(work / "yf.npz", X=np.arange(4.0).reshape(4, 1),
             y=np.array([9.3e18, 0, 9.3e18, 0], dtype=np.float32))
    ds = _outcome(lambda: load_dataset(work / "yf.npz"))
    assert ds is not None and ds.classes == ("0", str(int(np.float32(9.3e18))))


@pytest.mark.parametrize(("parse", "text"), [
    (parse_spec, "a = " + "[" * 1000 + "]" * 1000),  # RecursionError in tomllib
    (parse_spec, "a = " + "{b = " * 3000 + "1" + "}" * 3000),  # minutes: a cubic key scanner
    (parse_spec, "a" + ".b" * 3000 + " = 1"),
    (parse_policy, "[[rule]]\nmax = " + "[" * 1000 + "]" * 1000),  # RecursionError
])
def test_deeply_nested_toml_is_refused_at_once(parse: Callable, text: str) -> None:
    start = time.monotonic()
    with pytest.raises(ConfigError, match="nest"):  # SpecError is a ConfigError
        parse(text)
    assert time.monotonic() - start < TIME_LIMIT_S
