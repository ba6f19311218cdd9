"""The registry of data sets, models and runs: recording, queries, compare, trace, the CLI,
Alembic migrations, and concurrent writers on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import copy
import json
import multiprocessing
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("sqlalchemy", reason="SQLAlchemy is not installed "
                    "(pip install 'SQLAlchemy>=2' alembic)")
pytest.importorskip("alembic", reason="Alembic is not installed (pip install alembic)")

import sqlalchemy as sa
import typer
from typer.testing import CliRunner

from miaudit.cli.registry import register
from miaudit.errors import ConfigError, DataError
from miaudit.registry import Registry, normalise_url
from miaudit.registry.records import record_file_fingerprint
from miaudit.registry.schema import VERSION_TABLE
from miaudit.registry.testing import (
    PostgresUnavailable,
    record_runs_worker,
    temporary_postgres,
)

TABLES = {"datasets", "records", "models", "model_records", "runs", "run_models",
          "run_attacks", "record_risk"}
runner = CliRunner()


# -- fixtures ----------------------------------------------------------------------------


def _audit(seed: int, out: Path) -> Path:
    import miaudit

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = miaudit.audit(data="wine", model="logistic", model_params={"epochs": 3},
                               attacks=["loss", "mentr", "confidence"], seed=seed)
    return result.save(out)


@pytest.fixture(scope="module")
def wine_runs(tmp_path_factory) -> list[Path]:
    """Two real audits of wine (logistic, seeds 0 and 1), saved as run folders."""
    base = tmp_path_factory.mktemp("wine-runs")
    return [_audit(0, base / "seed0"), _audit(1, base / "seed1")]


def _load(run_dir: Path) -> tuple[dict, pd.DataFrame]:
    return (json.loads((run_dir / "summary.json").read_text()),
            pd.read_parquet(run_dir / "scores.parquet"))


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'registry.db'}"


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL: $MIAUDIT_TEST_POSTGRES_URL, else a throwaway server in a temp dir."""
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install "
                        "'miaudit[postgres]')")
    given = os.environ.get("MIAUDIT_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    try:
        with temporary_postgres() as url:
            yield url
    except PostgresUnavailable as exc:
        pytest.skip(f"no PostgreSQL server can be started: {exc}")


def _fake_run(summary: dict, scores: pd.DataFrame, *, auc: float, ci: tuple[float, float],
              tpr: float | None = None, tpr_ci: tuple[float, float] | None = None
              ) -> tuple[dict, pd.DataFrame]:
    """A copy of a real run whose attacks all report the given figures."""
    summary = copy.deepcopy(summary)
    for entry in summary["attacks"].values():
        entry["auc"], entry["auc_ci"] = auc, list(ci)
        entry["tpr_at_fpr"]["0.01"] = tpr
        entry["tpr_at_fpr_ci"]["0.01"] = None if tpr_ci is None else list(tpr_ci)
    return summary, scores


# -- recording and queries ---------------------------------------------------------------


def test_record_two_real_runs_and_query_everything(wine_runs, sqlite_url):
    reg = Registry(sqlite_url)
    (s0, t0), (s1, t1) = _load(wine_runs[0]), _load(wine_runs[1])
    id0 = reg.record_run(s0, t0, wine_runs[0], spec={"purpose": "test"})
    id1 = reg.record_run(s1, t1, wine_runs[1])
    assert id0 != id1
    assert len(id0) == len("20260101-000000-abcdef") and id0[15] == "-"

    runs = reg.runs()
    assert [r["id"] for r in runs] == [id1, id0]  # newest first
    assert runs[0]["data"] == "wine" and runs[0]["exposure"] == "logits"
    best = max(s1["attacks"].values(), key=lambda e: e["auc"])["auc"]
    assert runs[0]["best_auc"] == pytest.approx(best)
    assert runs[0]["model"].startswith("logistic")
    assert reg.runs(limit=1)[0]["id"] == id1

    models = reg.models()
    assert len(models) == 2  # two seeds: two training sets
    assert {m["seed"] for m in models} == {0, 1}
    assert all(m["recipe"]["name"] == "logistic" and m["data"] == "wine" for m in models)
    assert sorted(r for m in models for r in m["runs"]) == sorted([id0, id1])

    shown = reg.show(id0[:-2])  # a unique prefix
    assert shown["id"] == id0 and shown["spec"] == {"purpose": "test"}
    assert shown["dataset"]["fingerprint"] == s0["data"]["fingerprint"]
    assert shown["dataset"]["n_records"] == 178
    assert shown["settings"]["seed"] == 0 and shown["summary"] == s0
    assert {a["attack"] for a in shown["attacks"]} == {"loss", "mentr", "confidence"}
    loss = next(a for a in shown["attacks"] if a["attack"] == "loss")
    assert loss["auc"] == pytest.approx(s0["attacks"]["loss"]["auc"])
    assert [loss["auc_lo"], loss["auc_hi"]] == pytest.approx(s0["attacks"]["loss"]["auc_ci"])
    n_mem = s0["target"]["n_members"]  # drawn per record with probability 1/2
    assert shown["models"][0]["role"] == "target" and shown["models"][0]["n_members"] == n_mem
    assert shown["risk"]["attack"] in {"loss", "mentr", "confidence"}
    assert shown["risk"]["n_records"] == 178 and shown["risk"]["n_members"] == n_mem
    assert reg.run_dir(id0) == wine_runs[0].resolve()

    with reg._engine.connect() as conn:  # the data set and its records once
        assert conn.scalar(sa.text("SELECT count(*) FROM datasets")) == 1
        assert conn.scalar(sa.text("SELECT count(*) FROM records")) == 178


def test_record_risk_matches_the_strongest_attack(wine_runs, sqlite_url):
    from miaudit.audits.exposures import record_risk

    reg = Registry(sqlite_url)
    summary, scores = _load(wine_runs[0])
    run_id = reg.record_run(summary, scores, wine_runs[0])
    attack = reg.show(run_id)["risk"]["attack"]
    member = scores["is_member"].to_numpy(bool)
    expected = dict(zip(scores["fingerprint"], record_risk(scores[attack].to_numpy(), member),
                        strict=True))
    fp = scores["fingerprint"][member].iloc[3]
    risks = {r["run_id"]: r["risk"] for t in reg.trace(fp) for r in t["runs"]}
    assert risks[run_id] == pytest.approx(expected[fp])


def test_same_run_twice_reuses_data_set_and_model(wine_runs, sqlite_url):
    reg = Registry(sqlite_url)
    ids = [reg.record_run_dir(wine_runs[0]) for _ in range(2)]
    assert len(set(ids)) == 2
    models = reg.models()
    assert len(models) == 1 and sorted(models[0]["runs"]) == sorted(ids)


def test_models_not_built_from_a_recipe_are_told_apart_by_their_outputs(sqlite_url, tmp_path):
    from sklearn.linear_model import LogisticRegression

    from miaudit import audit
    from miaudit.data import load_dataset

    ds = load_dataset("breast_cancer")
    members = np.arange(ds.n_records) % 2 == 0
    reg = Registry(sqlite_url)
    ids = []
    for i, c in enumerate((1e-3, 1e-3, 1e4)):
        model = LogisticRegression(C=c, max_iter=2000).fit(ds.X[members], ds.y[members])
        result = audit(data=ds, model=model, members=members, attacks=["loss"],
                       exposure="probabilities")
        saved = result.save(tmp_path / f"r{i}")
        ids.append(reg.record_run(result.summary(), result.scores, saved))
    models = reg.models()
    assert len(models) == 2  # the two C=1e-3 models are one; C=1e4 is another
    assert sorted(len(m["runs"]) for m in models) == [1, 2]


def test_unknown_and_ambiguous_run_ids(wine_runs, sqlite_url):
    reg = Registry(sqlite_url)
    a = reg.record_run_dir(wine_runs[0])
    b = reg.record_run_dir(wine_runs[1])
    typo = a[:-1] + ("0" if a[-1] != "0" else "1")
    with pytest.raises(ConfigError, match=f"Unknown run ID '{typo}'.*Did you mean {a}"):
        reg.show(typo)
    with pytest.raises(ConfigError, match=rf"prefix '{a[:4]}' is ambiguous: it matches "
                       rf"({a}, {b}|{b}, {a})"):
        reg.show(a[:4])  # both runs are of this year
    with pytest.raises(ConfigError, match=r"Unknown run ID 'nothing-like-it'.*miaudit runs"):
        reg.compare("nothing-like-it", a)


def test_bad_input_is_one_clear_error(sqlite_url, wine_runs, tmp_path):
    reg = Registry(sqlite_url)
    summary, scores = _load(wine_runs[0])
    with pytest.raises(DataError, match="data fingerprint"):
        reg.record_run({"attacks": {}}, scores, tmp_path)
    with pytest.raises(DataError, match=r"lacks the column.*is_member"):
        reg.record_run(summary, scores.drop(columns=["is_member"]), tmp_path)
    with pytest.raises(DataError, match=r"summary\.json not found"):
        reg.record_run_dir(tmp_path)
    with pytest.raises(ConfigError, match="not supported"):
        Registry("mysql://u@h/db")


def test_resolve_run_dir_uses_the_default_registry(wine_runs, tmp_path, monkeypatch):
    from miaudit.registry import resolve_run_dir

    monkeypatch.setenv("MIAUDIT_REGISTRY", f"sqlite:///{tmp_path}/default.db")
    with pytest.raises(ConfigError, match="does not exist yet"):
        resolve_run_dir("20260101")
    assert not (tmp_path / "default.db").exists()
    summary, scores = _load(wine_runs[0])
    summary["spec"] = {"task": "classification", "data": "wine"}
    run_id = Registry().record_run(summary, scores, wine_runs[0])
    assert resolve_run_dir(run_id[:-3]) == wine_runs[0].resolve()
    assert Registry().show(run_id)["spec"] == summary["spec"]  # the spec of a spec run
    with pytest.raises(ConfigError, match="Unknown run ID"):
        resolve_run_dir("19990101-000000-000000")


def test_default_url_and_normalisation(tmp_path, monkeypatch):
    monkeypatch.setenv("MIAUDIT_REGISTRY", f"sqlite:///{tmp_path}/env.db")
    assert Registry().url == f"sqlite:///{tmp_path}/env.db"
    monkeypatch.delenv("MIAUDIT_REGISTRY")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    reg = Registry()
    db = tmp_path / "home" / ".local" / "share" / "miaudit" / "registry.db"
    assert reg.url == f"sqlite:///{db}" and db.parent.is_dir()
    assert reg.runs() == [] and db.is_file()
    with reg._engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000
    assert normalise_url("postgres://u:p@h:5/db") == "postgresql+psycopg://u:p@h:5/db"
    assert normalise_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("postgresql+psycopg2://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert normalise_url("sqlite:///~/r.db") == f"sqlite:///{tmp_path / 'home'}/r.db"


# -- compare -----------------------------------------------------------------------------


def test_compare_two_seeds_of_the_same_setting(wine_runs, sqlite_url):
    reg = Registry(sqlite_url)
    a, b = reg.record_run_dir(wine_runs[0]), reg.record_run_dir(wine_runs[1])
    c = reg.compare(a, b)
    assert c["changed"]["settings"]["seed"] == {"a": 0, "b": 1}
    assert c["changed"]["model_seed"] == {"a": 0, "b": 1}
    assert "data" not in c["changed"] and "exposure" not in c["changed"]
    assert set(c["attacks"]) == {"loss", "mentr", "confidence"}
    auc = c["attacks"]["loss"]["auc"]
    assert auc["change"] == pytest.approx(auc["b"] - auc["a"])
    assert auc["beyond_intervals"] is False
    assert c["attacks"]["loss"]["tpr_at_0.1%_fpr"]["beyond_intervals"] is None  # too few
    assert c["verdict"] == "no figure changed beyond the intervals"
    assert "do not overlap" in c["rule"]


def test_compare_clearly_different_runs(wine_runs, sqlite_url):
    reg = Registry(sqlite_url)
    summary, scores = _load(wine_runs[0])
    leaky = copy.deepcopy(summary)
    leaky["target"]["recipe"] |= {"name": "mlp", "hidden": [256, 256], "epochs": 300}
    leaky["target"]["model"] = "mlp"
    leaky, _ = _fake_run(leaky, scores, auc=0.97, ci=(0.95, 0.99), tpr=0.60,
                         tpr_ci=(0.50, 0.70))
    safe, _ = _fake_run(summary, scores, auc=0.52, ci=(0.44, 0.60), tpr=0.01,
                        tpr_ci=(0.0, 0.06))
    a = reg.record_run(safe, scores, wine_runs[0])
    b = reg.record_run(leaky, scores, wine_runs[0])
    c = reg.compare(a, b)
    assert c["changed"]["model_recipe"]["name"] == {"a": "logistic", "b": "mlp"}
    assert c["changed"]["model_recipe"]["hidden"] == {"a": [], "b": [256, 256]}
    for attack in ("loss", "mentr", "confidence"):
        assert c["attacks"][attack]["auc"]["beyond_intervals"] is True
        assert c["attacks"][attack]["tpr_at_1%_fpr"]["beyond_intervals"] is True
    assert "loss auc" in c["beyond_intervals"]
    assert c["verdict"].startswith("beyond the intervals: ")
    assert len(reg.models()) == 2  # another recipe is another model


# -- trace -------------------------------------------------------------------------------


def test_trace_finds_members_only_in_their_models(wine_runs, sqlite_url):
    reg = Registry(sqlite_url)
    (s0, t0), (_, t1) = _load(wine_runs[0]), _load(wine_runs[1])
    id0, id1 = reg.record_run_dir(wine_runs[0]), reg.record_run_dir(wine_runs[1])
    in0 = set(t0["fingerprint"][t0["is_member"]])
    in1 = set(t1["fingerprint"][t1["is_member"]])
    only0 = sorted(in0 - in1)[0]
    traced = reg.trace(only0)
    assert len(traced) == 1
    assert traced[0]["model"]["seed"] == 0 and traced[0]["record_fingerprint"] == only0
    assert [r["run_id"] for r in traced[0]["runs"]] == [id0]
    assert 0.0 <= traced[0]["runs"][0]["risk"] <= 1.0
    both = reg.trace(sorted(in0 & in1)[0])
    assert {t["model"]["seed"] for t in both} == {0, 1}
    assert sorted(r["run_id"] for t in both for r in t["runs"]) == sorted([id0, id1])
    assert reg.trace(sorted(set(t0["fingerprint"]) - in0 - in1)[0]) == []
    # by record ID: the records with that ID in every data set
    rid = t0.loc[t0["fingerprint"] == only0, "record_id"].iloc[0]
    by_id = reg.trace(str(rid))
    assert [t["record_fingerprint"] for t in by_id] == [only0]
    assert by_id[0]["record_ids"] == [f"wine:{rid}"]
    assert reg.trace("no-such-record") == []
    assert s0["data"]["name"] == "wine"


def test_online_references_are_registered_from_signals(wine_runs, sqlite_url, tmp_path):
    summary, scores = _load(wine_runs[0])
    summary["settings"] |= {"references": 2, "reference_mode": "online"}
    run_dir = tmp_path / "refs"
    run_dir.mkdir()
    member = scores["is_member"].to_numpy(bool)
    other = np.roll(member, 1)
    np.savez(run_dir / "signals.npz", membership=np.stack([member, ~member, other]),
             record_ids=scores["record_id"].to_numpy(str))
    reg = Registry(sqlite_url)
    run_id = reg.record_run(summary, scores, run_dir)
    roles = sorted(m["role"] for m in reg.show(run_id)["models"])
    assert roles == ["reference", "reference", "target"]
    fp = scores["fingerprint"][~member].iloc[0]  # not in the target, in its complement
    traced = reg.trace(fp)
    assert any(r["role"] == "reference" and r["risk"] is None
               for t in traced for r in t["runs"])


# -- record files ------------------------------------------------------------------------


def _table(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"pid": [f"p{i}" for i in range(30)],
                          "age": rng.integers(18, 90, 30).astype(str),
                          "job": rng.choice(["a", "b", "?"], 30),
                          "income": rng.choice(["<=50K", ">50K"], 30)})
    path = tmp_path / "people.csv"
    frame.to_csv(path, index=False)
    return path


def test_record_file_fingerprint_is_the_loaders(tmp_path):
    from miaudit.data.loaders import load_dataset

    path = _table(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = load_dataset(path, label_column="income", id_column="pid")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    row = frame.iloc[[7]]
    row.to_csv(tmp_path / "one.csv", index=False)
    (tmp_path / "one.json").write_text(json.dumps(row.iloc[0].to_dict()))
    row.drop(columns=["pid"]).iloc[::, ::-1].to_csv(tmp_path / "noid.csv", index=False)
    want = ds.fingerprints[list(ds.ids).index("p7")]
    assert record_file_fingerprint(tmp_path / "one.csv", id_column="pid") == want
    assert record_file_fingerprint(tmp_path / "one.json", id_column="pid") == want
    assert record_file_fingerprint(tmp_path / "noid.csv") == want  # column order is free
    assert record_file_fingerprint(tmp_path / "one.csv") != want  # the ID is not content
    frame.iloc[:2].to_csv(tmp_path / "two.csv", index=False)
    with pytest.raises(DataError, match="2 rows"):
        record_file_fingerprint(tmp_path / "two.csv")


# -- command line ------------------------------------------------------------------------


@pytest.fixture
def cli():
    app = typer.Typer()
    register(app)

    def invoke(*args: str):
        return runner.invoke(app, list(args))

    return invoke


def test_cli_commands(wine_runs, sqlite_url, cli):
    rec = cli("record", str(wine_runs[0]), "--registry", sqlite_url)
    assert rec.exit_code == 0, rec.output
    a = rec.stdout.strip()
    b = json.loads(cli("record", str(wine_runs[1]), "--registry", sqlite_url,
                       "--format", "json").stdout)["run_id"]

    res = cli("runs", "--registry", sqlite_url)
    assert res.exit_code == 0 and a in res.stdout and "wine" in res.stdout
    assert [r["id"] for r in json.loads(cli("runs", "--registry", sqlite_url, "--format",
                                            "json").stdout)] == [b, a]
    res = cli("models", "--registry", sqlite_url)
    assert res.exit_code == 0 and "logistic" in res.stdout
    assert len(json.loads(cli("models", "--registry", sqlite_url, "--format", "json").stdout)
               ) == 2
    res = cli("show", a[:-1], "--registry", sqlite_url)
    assert res.exit_code == 0 and a in res.stdout and "loss" in res.stdout
    assert json.loads(cli("show", a, "--registry", sqlite_url, "--format", "json").stdout
                      )["id"] == a
    res = cli("compare", a, b, "--registry", sqlite_url)
    assert res.exit_code == 0 and "seed" in res.stdout and "beyond the intervals" in res.stdout
    comparison = json.loads(cli("compare", a, b, "--registry", sqlite_url, "--format",
                                "json").stdout)
    assert comparison["run_a"] == a and comparison["run_b"] == b

    _, scores = _load(wine_runs[0])
    fp = scores["fingerprint"][scores["is_member"]].iloc[0]
    res = cli("trace", "--record", fp, "--registry", sqlite_url)
    assert res.exit_code == 0 and a in res.stdout
    traced = json.loads(cli("trace", "--record", fp, "--registry", sqlite_url, "--format",
                            "json").stdout)
    assert traced["record"] == fp and traced["models"][0]["runs"][0]["run_id"] == a

    res = cli("show", "no-such-run", "--registry", sqlite_url)
    assert res.exit_code == 1 and "Unknown run ID 'no-such-run'" in res.output
    assert "Traceback" not in res.output
    res = cli("runs", "--registry", "mysql://nope")
    assert res.exit_code == 1 and "not supported" in res.output


def test_cli_trace_a_record_file(tmp_path, sqlite_url, cli):
    from miaudit.data.loaders import load_dataset

    path = _table(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = load_dataset(path, label_column="income", id_column="pid")
    member = np.arange(ds.n_records) % 2 == 0
    scores = pd.DataFrame({"exposure": "logits", "target": 0, "record_id": ds.ids,
                           "fingerprint": ds.fingerprints, "is_member": member,
                           "loss": np.linspace(0, 1, ds.n_records)})
    entry = {"auc": 0.5, "auc_ci": [0.3, 0.7], "tpr_at_fpr": {}, "tpr_at_fpr_ci": {},
             "epsilon_lower_bound": 0.0}
    summary = {"data": {"name": "people.csv", "fingerprint": ds.fingerprint,
                        "n_records": ds.n_records},
               "target": {"model": "mlp", "recipe": {"name": "mlp"}, "seed": 0},
               "exposure": "logits", "attacks": {"loss": entry}, "settings": {"seed": 0}}
    run_id = Registry(sqlite_url).record_run(summary, scores, tmp_path)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.iloc[[4]].to_csv(tmp_path / "member.csv", index=False)  # p4: a member
    frame.iloc[[5]].to_csv(tmp_path / "other.csv", index=False)  # p5: not a member
    res = cli("trace", "--record", str(tmp_path / "member.csv"), "--id-column", "pid",
              "--registry", sqlite_url, "--format", "json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["models"][0]["runs"][0]["run_id"] == run_id
    assert out["models"][0]["record_ids"] == ["people.csv:p4"]
    res = cli("trace", "--record", str(tmp_path / "other.csv"), "--id-column", "pid",
              "--registry", sqlite_url)
    assert res.exit_code == 0 and "people.csv:p5" in res.stdout
    assert "in no registered model's training set" in res.stdout
    res = cli("trace", "--record", str(tmp_path / "missing.csv"), "--registry", sqlite_url)
    assert res.exit_code == 1 and "not found" in res.output


# -- Alembic -----------------------------------------------------------------------------


def _tables(reg: Registry) -> set[str]:
    return set(sa.inspect(reg._engine).get_table_names())


def _check_migrations(reg: Registry) -> None:
    assert reg.current_revision() is None
    assert not TABLES & _tables(reg)
    head = reg.head()
    assert reg.upgrade() == head
    assert TABLES | {VERSION_TABLE} <= _tables(reg)
    with reg._engine.connect() as conn:
        assert conn.scalar(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")) == head
    assert reg.upgrade() == head  # a no-op
    with reg._engine.connect() as conn:
        assert conn.scalar(sa.text(f"SELECT count(*) FROM {VERSION_TABLE}")) == 1


def test_alembic_upgrade_on_an_empty_database(sqlite_url):
    _check_migrations(Registry(sqlite_url))


def test_schema_matches_the_migrations(sqlite_url):
    """The ORM tables and the migrated schema agree (no migration is missing)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from miaudit.registry.schema import Base

    reg = Registry(sqlite_url)
    reg.upgrade()
    with reg._engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        assert compare_metadata(ctx, Base.metadata) == []


# -- concurrent writers ------------------------------------------------------------------


def _concurrent_writers(url: str, run_dirs: list[Path], workers: int = 4,
                        repeats: int = 2) -> list[str]:
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(workers), ctx.Queue()
    procs = [ctx.Process(target=record_runs_worker,
                         args=(url, [str(d) for d in run_dirs], repeats, barrier, results))
             for _ in range(workers)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    errors = [msg for status, msg in outcomes if status == "error"]
    assert not errors, errors
    ids = [i for _, got in outcomes for i in got]
    assert len(ids) == workers * repeats * len(run_dirs) == len(set(ids))
    return ids


def _check_after_writers(reg: Registry, ids: list[str], run_dirs: list[Path]) -> None:
    listed = {r["id"] for r in reg.runs(limit=None)}
    assert set(ids) <= listed
    fingerprints = {_load(d)[0]["data"]["fingerprint"] for d in run_dirs}
    with reg._engine.connect() as conn:
        per_dataset = conn.execute(sa.text(
            "SELECT fingerprint, count(*) FROM datasets GROUP BY fingerprint")).all()
        assert {fp for fp, _ in per_dataset} >= fingerprints
        assert all(n == 1 for _, n in per_dataset)
        n_models = conn.scalar(sa.text("SELECT count(*) FROM models"))
        dup_records = conn.scalar(sa.text(
            "SELECT count(*) FROM (SELECT dataset_fingerprint, fingerprint FROM records "
            "GROUP BY dataset_fingerprint, fingerprint HAVING count(*) > 1) AS d"))
        members = conn.execute(sa.text(
            "SELECT m.id, m.n_members, count(r.record_fingerprint) FROM models m "
            "LEFT JOIN model_records r ON r.model_id = m.id GROUP BY m.id, m.n_members")).all()
        attacks = conn.scalar(sa.text("SELECT count(*) FROM run_attacks WHERE run_id IN "
                                      "(SELECT id FROM runs)"))
    assert dup_records == 0
    assert all(n == count for _, n, count in members)  # every training set complete
    assert n_models == len(run_dirs) or os.environ.get("MIAUDIT_TEST_POSTGRES_URL")
    models = reg.models()
    for run_id in ids:
        assert sum(run_id in m["runs"] for m in models) == 1
    assert attacks >= 3 * len(ids)


def test_concurrent_writers_sqlite(wine_runs, tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"  # a fresh file: the workers migrate it too
    ids = _concurrent_writers(url, wine_runs)
    reg = Registry(url)
    _check_after_writers(reg, ids, wine_runs)
    assert reg.current_revision() == reg.head()


# -- PostgreSQL --------------------------------------------------------------------------


def test_postgres_round_trip(postgres_url, wine_runs):
    reg = Registry(postgres_url)
    assert reg.dialect == "postgresql"
    summary, scores = _load(wine_runs[0])
    run_id = reg.record_run(summary, scores, wine_runs[0], spec={"k": [1, 2]})
    assert reg.current_revision() == reg.head()
    shown = reg.show(run_id)
    assert shown["spec"] == {"k": [1, 2]} and shown["summary"] == summary
    assert shown["dataset"]["fingerprint"] == summary["data"]["fingerprint"]
    assert len(shown["attacks"]) == 3
    assert shown["risk"]["n_members"] == summary["target"]["n_members"]
    fp = scores["fingerprint"][scores["is_member"]].iloc[0]
    assert run_id in [r["run_id"] for t in reg.trace(fp) for r in t["runs"]]
    other = reg.record_run_dir(wine_runs[1])
    assert reg.compare(run_id, other)["changed"]["settings"]["seed"] == {"a": 0, "b": 1}
    assert reg.runs(limit=2)[0]["id"] == other
    reg.close()


def test_postgres_alembic_upgrade_on_an_empty_database(postgres_url):
    if os.environ.get("MIAUDIT_TEST_POSTGRES_URL"):
        pytest.skip("MIAUDIT_TEST_POSTGRES_URL is given: its database is not empty")
    from miaudit.registry.testing import _create_database

    base, _, _ = postgres_url.rpartition("/")
    _create_database(f"{base}/postgres", "miaudit_empty")
    reg = Registry(f"{base}/miaudit_empty")
    _check_migrations(reg)
    reg.close()


def test_concurrent_writers_postgres(postgres_url, wine_runs):
    ids = _concurrent_writers(postgres_url, wine_runs)
    reg = Registry(postgres_url)
    _check_after_writers(reg, ids, wine_runs)
    reg.close()
