"""Reading a spec file: parse, validate, and name the file, field and line of every problem."""

from __future__ import annotations

import hashlib
import os
import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from miaudit.errors import ConfigError
from miaudit.spec.locate import Located, SyntaxProblem, parse_toml, parse_yaml
from miaudit.spec.schema import (
    AuditSection,
    AuditSpec,
    DataSection,
    LMSection,
    SpecError,
    SpecProblem,
    TargetSection,
    TrainingSection,
    _did_you_mean,
    format_path,
)

__all__ = ["SPEC_FORMATS", "load_spec", "parse_spec"]

#: File endings read as specs, and their format.
SPEC_FORMATS: dict[str, Literal["toml", "yaml"]] = {
    ".toml": "toml", ".yaml": "yaml", ".yml": "yaml"}

_SECTIONS: dict[tuple, type[BaseModel]] = {
    (): AuditSpec, ("data",): DataSection, ("target",): TargetSection,
    ("audit",): AuditSection, ("training",): TrainingSection, ("lm",): LMSection,
}
_TABLE_ERRORS = ("model_type", "model_attributes_type", "dict_type")


def load_spec(path: str | os.PathLike) -> AuditSpec:
    """Read and validate an audit spec (``.toml``, ``.yaml`` or ``.yml``).

    Relative paths in the spec are resolved from the spec file's folder; the data, outputs
    and model files it names must exist.

    Parameters
    ----------
    path : str or path-like
        The spec file.

    Returns
    -------
    AuditSpec
        With :attr:`~AuditSpec.source` set: the file's absolute ``path``, its ``sha256``,
        ``format`` and ``text``.

    Raises
    ------
    SpecError
        A syntax error, an unknown key, a wrong type or range, a missing or conflicting
        setting, or a missing file; the message starts ``FILE:LINE: FIELD.PATH:``.
    ConfigError
        The spec file itself is missing or not a ``.toml`` / ``.yaml`` file.

    Examples
    --------
    >>> spec = load_spec("audit.toml")  # doctest: +SKIP
    >>> miaudit.audit(**spec.to_audit_kwargs())  # doctest: +SKIP
    """
    p = Path(path)
    fmt = SPEC_FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise ConfigError(f"Spec file {p} must end in {', '.join(SPEC_FORMATS)}.")
    if not p.is_file():
        what = "is a folder" if p.is_dir() else "not found"
        raise ConfigError(f"Spec file {what}: {p}"
                          + ("" if p.is_absolute() else f" (resolved to {p.absolute()})"))
    try:
        raw = p.read_bytes()
    except OSError as exc:  # permission denied, a file that vanished, ...
        raise ConfigError(f"Cannot read the spec file {p}: {exc.strerror or exc}.") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}).") from None
    source = {"path": str(p.resolve()), "sha256": hashlib.sha256(raw).hexdigest(),
              "format": fmt, "text": text}
    return parse_spec(text, fmt, file=str(path), base_dir=p.parent, source=source,
                      check_files=True)


def parse_spec(text: str, format: Literal["toml", "yaml"] = "toml", *,
               file: str = "<spec>", base_dir: str | os.PathLike | None = None,
               source: dict | None = None, check_files: bool = False) -> AuditSpec:
    """Validate spec text (what :func:`load_spec` does after reading the file).

    Parameters
    ----------
    text : str
    format : {"toml", "yaml"}, default "toml"
    file : str, default "<spec>"
        The name that error messages start with.
    base_dir : path-like, optional
        The folder relative paths are resolved from (default: the working directory).
    source : dict, optional
        Provenance to record as :attr:`AuditSpec.source`.
    check_files : bool, default False
        Refuse data, outputs and model paths that do not exist.

    Examples
    --------
    >>> spec = parse_spec("{data: {source: digits}, target: {recipe: logistic}}", "yaml")
    >>> spec.task, spec.to_audit_kwargs()["model"]
    ('classification', 'logistic')
    >>> parse_spec("{data: {source: digits}, audit: {seed: many}}", "yaml", file="a.yaml")
    Traceback (most recent call last):
    ...
    miaudit.spec.schema.SpecError: a.yaml:1: audit.seed: Input should be a valid integer, got 'many'
    """
    try:
        located = parse_toml(text) if format == "toml" else parse_yaml(text)
    except SyntaxProblem as exc:
        raise _error([SpecProblem(file, exc.line, format_path(exc.path), exc.message)]
                     ) from None
    data = located.data
    if not isinstance(data, dict):
        got = "nothing" if data is None else f"a {type(data).__name__}"
        raise _error([SpecProblem(file, 1, format_path(()), "a spec is a mapping of "
                                  f"sections (data, target, audit, ...), got {got}")])
    try:
        spec = AuditSpec.model_validate(data)
    except ValidationError as exc:
        raise _error(_validation_problems(exc, located, file)) from None
    except SpecError as exc:
        raise _error([_problem(file, located, exc.loc, exc.detail)]) from None
    spec.with_source(base_dir, source)
    if check_files:
        problems = [_problem(file, located, loc, msg) for loc, msg in missing_files(spec)]
        if problems:
            raise _error(problems)
    return spec


def missing_files(spec: AuditSpec) -> list[tuple[tuple, str]]:
    """``(field path, message)`` for each data, outputs or model path that does not exist."""
    out = []
    if spec.data is not None:
        from miaudit.data import BUILTIN_DATASETS, SUPPORTED_EXTENSIONS

        name = spec.data.source
        path = spec.resolve_path(name)
        resolved = _shown_path(path)
        if name not in BUILTIN_DATASETS and not Path(path).exists():
            looks_named = ("/" not in name and os.sep not in name
                           and not name.lower().endswith(tuple(SUPPORTED_EXTENSIONS)))
            if looks_named and spec.task == "classification":
                out.append((("data", "source"),
                            f"{name!r} is neither a built-in data set nor a file "
                            f"({resolved} not found)"
                            f"{_did_you_mean(name, list(BUILTIN_DATASETS))}"))
            else:
                out.append((("data", "source"), f"data file not found: {resolved}"))
    for section, key, what in (("target", "outputs", "outputs file"),
                               ("target", "model", "model folder"),
                               ("lm", "base_model", "base model folder"),
                               ("lm", "reference_model", "reference model folder")):
        value = getattr(getattr(spec, section) or object(), key, None)
        path = None if value is None else spec.resolve_path(value)
        if path is not None and not Path(path).exists():
            out.append(((section, key), f"{what} not found: {_shown_path(path)}"))
    return out


def _shown_path(path: str) -> str:
    """A path for a one-line message: as it is, or quoted when it holds a line break or
    another unprintable character."""
    return path if path.isprintable() else repr(path)


# ---------------------------------------------------------------------- messages


def _error(problems: list[SpecProblem]) -> SpecError:
    problems = sorted(problems, key=lambda p: (p.line or 0))
    return SpecError(problems[0].message, problems=problems)


def _problem(file: str, located: Located, loc: tuple, message: str) -> SpecProblem:
    return SpecProblem(file, located.line_of(loc), format_path(loc), message)


def _data_loc(loc: tuple, data: Any, kind: str) -> tuple:
    """The error's path in the spec data, without pydantic's union-member tags."""
    out: list = []
    current = data
    for i, part in enumerate(loc):
        inside = (part in current if isinstance(current, dict) else
                  isinstance(current, list) and isinstance(part, int)
                  and 0 <= part < len(current))
        if inside:
            current = current[part]
        elif not (i == len(loc) - 1 and kind == "missing"):
            continue  # a tag such as 'str' or 'list[str]' naming a member of a union
        out.append(part)
    return tuple(out)


def _validation_problems(exc: ValidationError, located: Located, file: str
                         ) -> list[SpecProblem]:
    grouped: dict[tuple, list[dict]] = defaultdict(list)
    for err in exc.errors(include_url=False):
        grouped[_data_loc(tuple(err["loc"]), located.data, err["type"])].append(err)
    return [_problem(file, located, loc, _message(loc, errs)) for loc, errs in grouped.items()]


def _message(loc: tuple, errs: list[dict]) -> str:
    err = errs[0]
    kind, value = err["type"], err.get("input")
    if kind == "missing":
        return "required, but missing"
    if kind == "extra_forbidden":
        model = _SECTIONS.get(loc[:-1])
        known = list(model.model_fields) if model else []
        where = f"in [{format_path(loc[:-1])}]" if loc[:-1] else "at the top level"
        return f"unknown key {loc[-1]!r} {where}{_did_you_mean(str(loc[-1]), known)}"
    if kind in _TABLE_ERRORS:
        return f"should be a table of settings, got {_shown(value)}"
    texts = []
    for e in errs:
        msg = re.sub(r"^(Value|Assertion) error, ", "", e["msg"])
        msg = re.sub(r", unable to .*$", "", msg)
        if msg not in texts:
            texts.append(msg)
    if len(texts) > 1 and all(t.startswith("Input should be ") for t in texts):
        text = "Input should be " + " or ".join(t.removeprefix("Input should be ")
                                                for t in texts)
    else:
        text = texts[0]
    if value is not None and not isinstance(value, dict | list) and "got" not in text:
        text += f", got {value!r}"
    return text


def _shown(value: Any) -> str:
    if isinstance(value, dict | list):
        return f"a {type(value).__name__}"
    return repr(value)
