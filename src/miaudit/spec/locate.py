"""Parse TOML and YAML spec text, keeping the line of every key.

``tomllib`` reports no positions, so the TOML text is scanned line by line: table headers,
(dotted, quoted) keys and the keys of inline tables are recorded under their full path;
strings, comments and arrays that span lines are skipped. YAML keeps marks on its nodes,
so the composed node tree gives the lines directly.
"""

from __future__ import annotations

import functools
import json
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Located", "SyntaxProblem", "parse_toml", "parse_yaml"]

_BARE = r"[A-Za-z0-9_-]+"
_PART = rf'(?:{_BARE}|"(?:[^"\\]|\\.)*"|\'[^\']*\')'
_DOTTED = rf"{_PART}(?:\s*\.\s*{_PART})*"
_HEADER = re.compile(rf"\s*\[\[?\s*({_DOTTED})\s*\]\]?")
_KEY = re.compile(rf"\s*({_DOTTED})\s*=")
_PART_RE = re.compile(_PART)
_TOML_POS = re.compile(r"\s*\(at line (\d+), column (\d+)\)|\s*\(at end of document\)")


@dataclass
class Located:
    """Parsed spec data with the line (1-based) of every key path seen in the text."""

    data: Any
    lines: dict[tuple, int] = field(default_factory=dict)
    line_paths: dict[int, tuple] = field(default_factory=dict)

    def line_of(self, loc: tuple) -> int:
        """The line of ``loc``, else of its closest enclosing key or section, else 1."""
        for n in range(len(loc), 0, -1):
            if tuple(loc[:n]) in self.lines:
                return self.lines[tuple(loc[:n])]
        return 1

    def path_at(self, line: int) -> tuple:
        """The key path written on ``line``, else the one of the closest line above."""
        for n in range(line, 0, -1):
            if n in self.line_paths:
                return self.line_paths[n]
        return ()


class SyntaxProblem(Exception):
    """A file that does not parse: ``line``, ``path`` (a key path) and ``message``."""

    def __init__(self, line: int, path: tuple, message: str) -> None:
        super().__init__(message)
        self.line, self.path, self.message = line, path, message


# ---------------------------------------------------------------------------- TOML


def _split_key(dotted: str) -> tuple[str, ...]:
    parts = []
    for m in _PART_RE.finditer(dotted):
        p = m.group(0)
        if p.startswith('"'):
            try:
                p = json.loads(p)
            except ValueError:
                p = p[1:-1]
        elif p.startswith("'"):
            p = p[1:-1]
        parts.append(p)
    return tuple(parts)


#: Deepest nesting of keys, arrays and inline tables a TOML spec may have: a spec has 3
#: or 4 levels; deeper text is refused before it can exhaust the parser's recursion.
MAX_TOML_DEPTH = 100


class _TomlScanner:
    """Line-by-line positions of TOML keys (not a parser: ``tomllib`` checks the syntax)."""

    def __init__(self) -> None:
        self.lines: dict[tuple, int] = {}
        self.line_paths: dict[int, tuple] = {}
        self.table: tuple = ()
        self.stack: list[tuple[str, tuple]] = []  # open [ and { of a value, with its path
        self.in_string: str | None = None  # delimiter of an open multi-line string

    def record(self, path: tuple, line: int) -> None:
        if len(path) > MAX_TOML_DEPTH:
            raise SyntaxProblem(line, (), f"the TOML nests keys more than {MAX_TOML_DEPTH} "
                                "levels deep")
        for n in range(1, len(path) + 1):
            self.lines.setdefault(path[:n], line)
        self.line_paths.setdefault(line, path)

    def scan(self, text: str) -> None:
        for number, line in enumerate(text.splitlines(), start=1):
            self.scan_line(line, number)

    def scan_line(self, s: str, number: int) -> None:
        i = 0
        if self.in_string:
            end = s.find(self.in_string)
            if end < 0:
                return
            i, self.in_string = end + 3, None
        elif not self.stack:
            if m := _HEADER.match(s):
                self.table = _split_key(m.group(1))
                self.record(self.table, number)
                return
            if m := _KEY.match(s):
                path = self.table + _split_key(m.group(1))
                self.record(path, number)
                self.value(s, m.end(), path, number)
                return
            if s.strip() and not s.strip().startswith("#"):
                self.line_paths.setdefault(number, self.table)
            return
        self.value(s, i, self.stack[-1][1] if self.stack else self.table, number)

    def value(self, s: str, i: int, path: tuple, number: int) -> None:
        """Skip a value from ``s[i]`` on, recording the keys of inline tables."""
        expect_key = False
        while i < len(s):
            if expect_key and self.stack and self.stack[-1][0] == "{":
                expect_key = False
                if m := _KEY.match(s, i):
                    path = self.stack[-1][1] + _split_key(m.group(1))
                    self.record(path, number)
                    i = m.end()
                    continue
            c = s[i]
            if c == "#":
                return
            if s.startswith(('"""', "'''"), i):
                delim = s[i:i + 3]
                end = s.find(delim, i + 3)
                if end < 0:
                    self.in_string = delim
                    return
                i = end + 3
                continue
            if c == '"':
                i += 1
                while i < len(s) and s[i] != '"':
                    i += 2 if s[i] == "\\" else 1
            elif c == "'":
                end = s.find("'", i + 1)
                i = len(s) if end < 0 else end
            elif c in "[{":
                if len(self.stack) >= MAX_TOML_DEPTH:
                    raise SyntaxProblem(number, (), "the TOML nests arrays and inline tables "
                                        f"more than {MAX_TOML_DEPTH} levels deep")
                self.stack.append((c, path))
                expect_key = c == "{"
            elif c in "]}":
                if self.stack:
                    self.stack.pop()
            elif c == "," and self.stack and self.stack[-1][0] == "{":
                expect_key = True
            i += 1


def parse_toml(text: str) -> Located:
    """Parse TOML text, with the line of every key.

    Raises
    ------
    SyntaxProblem
        When ``tomllib`` refuses the text (with its line and the key written there).
    """
    scanner = _TomlScanner()
    scanner.scan(text)
    located = Located(None, scanner.lines, scanner.line_paths)
    try:
        located.data = tomllib.loads(text)
    except RecursionError:
        raise SyntaxProblem(1, (), "the TOML is nested too deeply to read") from None
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        m = _TOML_POS.search(message)
        line = len(text.splitlines()) or 1
        if m and m.group(1):
            line = int(m.group(1))
            message = _TOML_POS.sub("", message) + f" (column {m.group(2)})"
        elif m:
            message = _TOML_POS.sub("", message) + " (at the end of the file)"
        raise SyntaxProblem(line, located.path_at(line), f"TOML syntax error: {message}"
                            ) from None
    return located


# ---------------------------------------------------------------------------- YAML

_YAML_KEY = re.compile(r"(\s*)(?:-\s+)?(\"[^\"]*\"|'[^']*'|[^\s#'\"][^:#]*?)\s*:(?:\s|$)")
#: YAML 1.2 floats (PyYAML's YAML 1.1 resolver reads 1e-3 as a string).
_YAML_FLOAT = re.compile(r"""^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?
                          |[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$""", re.X)


def _yaml() -> Any:
    try:
        import yaml
    except ImportError:
        from miaudit.errors import DependencyError

        raise DependencyError("Reading a YAML spec needs PyYAML: pip install pyyaml, or "
                              "write the spec in TOML.") from None
    return yaml


@functools.cache
def _yaml_loader() -> type:
    yaml = _yaml()

    class Loader(yaml.SafeLoader):
        """Safe loading with YAML 1.2 floats (``1e-3`` is a number)."""

    Loader.yaml_implicit_resolvers = {
        k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    Loader.add_implicit_resolver("tag:yaml.org,2002:float", _YAML_FLOAT,
                                 list("-+0123456789."))
    return Loader


def _yaml_path_at(text: str, line: int) -> tuple:
    """The key path at ``line`` of YAML text, from indentation (for syntax errors)."""
    stack: list[tuple[int, str]] = []
    for s in text.splitlines()[:line]:
        m = _YAML_KEY.match(s)
        if not m or s.strip().startswith("#"):
            continue
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, m.group(2).strip("'\"")))
    return tuple(k for _, k in stack)


def parse_yaml(text: str) -> Located:
    """Parse YAML text (safely), with the line of every key and list item.

    Raises
    ------
    SyntaxProblem
        When the text is not YAML, or a mapping repeats a key.
    """
    yaml = _yaml()
    loader = _yaml_loader()
    try:
        node = yaml.compose(text, Loader=loader)
        _check_expanded_size(node)  # before anything walks the aliases' expansion
        data = yaml.load(text, Loader=loader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = 1 if mark is None else mark.line + 1
        what = " ".join(" ".join(p.split()) for p in (exc.context, exc.problem) if p)
        raise SyntaxProblem(line, _yaml_path_at(text, line), f"YAML syntax error: {what}"
                            ) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow
        line = text.count("\n", 0, exc.position) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise SyntaxProblem(line, _yaml_path_at(text, line), f"YAML syntax error: "
                            f"character #x{code:04x} is not allowed ({exc.reason})") from None
    except yaml.YAMLError as exc:
        raise SyntaxProblem(1, (), f"YAML syntax error: {' '.join(str(exc).split())}"
                            ) from None
    except RecursionError:
        raise SyntaxProblem(1, (), "the YAML is nested too deeply to read") from None
    located = Located(data)
    if node is not None:
        _walk(node, (), located)
    return located


#: Most nodes a YAML spec may expand to once its aliases are followed: a spec has a few
#: hundred; an alias "bomb" (each level referring to the previous one several times)
#: reaches billions from a few lines, and every walk over it would hang.
MAX_YAML_NODES = 100_000


def _check_expanded_size(root: Any) -> None:
    """Refuse YAML whose aliases expand to more than :data:`MAX_YAML_NODES` nodes, or refer
    to themselves (each node of the graph is sized once, so the check stays linear)."""
    import yaml

    size: dict[int, int] = {}
    on_path: set[int] = set()

    def measure(node: Any) -> int:
        if id(node) in size:
            return size[id(node)]
        if id(node) in on_path:
            raise SyntaxProblem(node.start_mark.line + 1, (),
                                "the YAML refers to itself through an alias (*name inside "
                                "the value it names)")
        on_path.add(id(node))
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = node.value if isinstance(node, yaml.SequenceNode) else []
        total = 1
        for child in children:
            total = min(total + measure(child), MAX_YAML_NODES + 1)
        on_path.discard(id(node))
        size[id(node)] = total
        if total > MAX_YAML_NODES:
            raise SyntaxProblem(node.start_mark.line + 1, (),
                                f"the YAML expands to more than {MAX_YAML_NODES:,} values "
                                "once its aliases (*name) are followed; write the values out "
                                "or use fewer aliases")
        return total

    if root is not None:
        measure(root)


def _walk(node: Any, path: tuple, located: Located) -> None:
    import yaml

    if isinstance(node, yaml.MappingNode):
        seen: set = set()
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise SyntaxProblem(line, (*path, key), f"duplicate key {key!r}")
            seen.add(key)
            sub = (*path, key)
            located.lines.setdefault(sub, line)
            located.line_paths.setdefault(line, sub)
            _walk(value_node, sub, located)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            located.lines.setdefault((*path, i), item.start_mark.line + 1)
            _walk(item, (*path, i), located)
