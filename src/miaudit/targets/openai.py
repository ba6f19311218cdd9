"""A causal LM behind an OpenAI-compatible completions endpoint:
:class:`OpenAICompletionsTarget` and :func:`detect_lm_exposure`.

Optional (``pip install 'miaudit[openai]'``, the ``openai`` client library). The legacy
completions API (``POST {base_url}/completions``), which vLLM, llama.cpp's server, TGI's
OpenAI layer, LocalAI and others implement, returns the log-probability of every *prompt*
token when asked with ``echo=true``, ``max_tokens=0`` and ``logprobs``:
``choices[i].logprobs.token_logprobs`` (the first entry ``null``: nothing predicts the
first token) beside ``tokens``. That is all LOSS, zlib, lowercase, Min-K% and the reference
attack need, so :func:`~miaudit.audits.lm.audit_lm` runs them against an API.

Choices
-------
**First token.** The leading ``null`` entries are dropped, the rest kept: a server that puts
the tokenizer's BOS in front of the prompt (Llama-family servers, and
:mod:`miaudit.testing.openai_server`) scores every text token, as
:func:`miaudit.targets.lm.token_scores` does; a server that does not (GPT-2 served raw)
scores all tokens but the first. Either way the scores are ``log p(x_t | x_<t)`` of the
tokens the server predicts; compare a model with itself through one convention only.

**What is not there.** The API gives the chosen token's log-probability only, not the
next-token distribution: ``mean``/``std`` are ``None`` (no Min-K%++), ``token_ids`` is
``None`` (no DC-PDD). ``top_logprobs`` (at most 5 of the vocabulary) does not give an
honest mean or standard deviation over the vocabulary, so none is estimated.

**Budget.** ``max_texts`` counts the texts sent (cache hits are free). ``max_tokens``
counts prompt tokens and is checked *before* each request against an upper bound of the
request's count (UTF-8 bytes + 2 per text: every byte-level or byte-fallback tokenizer
gives at most one token per byte, plus BOS), so it is never exceeded; what was actually
used comes from the answers' ``usage.prompt_tokens`` (:attr:`prompt_tokens`).

**Credentials.** ``auth_env`` names an environment variable holding the API key; it is
read when a request is made and never kept in the object, its ``repr``, the cache or a
message.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from miaudit.errors import (
    ConfigError,
    DataError,
    DependencyError,
    OutputError,
    QueryBudgetError,
)
from miaudit.signals.tokens import TokenScores
from miaudit.targets.http.cache import AnswerCache
from miaudit.targets.http.urls import public_url, url_secrets

__all__ = ["LMExposure", "OpenAICompletionsTarget", "detect_lm_exposure"]

_CACHE_FORMAT = 1
#: The key local servers accept when none is needed (vLLM's convention).
_NO_KEY = "EMPTY"


def _openai():
    try:
        import openai
    except ImportError:
        raise DependencyError("Auditing a model behind an OpenAI-compatible API needs the "
                              "openai package: pip install 'miaudit[openai]'.") from None
    return openai


def token_bound(text: str) -> int:
    """An upper bound on the prompt tokens of ``text``: UTF-8 bytes + 2 (BOS, and a
    leading-space marker of SentencePiece tokenizers).

    >>> token_bound("héllo")
    8
    """
    return len(text.encode("utf-8")) + 2


class OpenAICompletionsTarget:
    """A causal LM queried through ``/v1/completions`` for its prompts' token
    log-probabilities.

    Parameters
    ----------
    base_url : str
        The API's base URL, for example ``http://127.0.0.1:8000/v1`` (requests go to
        ``{base_url}/completions``).
    model : str
        The served model's name (``model`` in the request).
    auth_env : str, optional
        Environment variable holding the API key (sent as ``Authorization: Bearer KEY``).
        Default: no key (``EMPTY`` is sent, as local servers expect).
    batch_size : int, default 16
        Prompts per request (the completions API takes a list); 1 for servers that take
        one prompt only.
    max_texts, max_tokens : int, optional
        Hard budgets: texts sent, and prompt tokens (checked against an upper bound before
        each request, see the module's notes). A request that would exceed one is not sent
        (:class:`~miaudit.errors.QueryBudgetError`); what was answered before is cached.
    max_retries : int, default 2
        The ``openai`` client's own retries (exponential backoff on 408, 409, 429, 5xx and
        connection errors, honouring ``Retry-After``).
    timeout : float, default 60
        Seconds per request.
    logprobs : int, default 1
        The request's ``logprobs`` (some servers read 0 as "none"; only the chosen token's
        log-probability is read).
    cache_dir : str or Path, optional
        Folder of the answer cache (the SQLite file of
        :class:`~miaudit.targets.http.cache.AnswerCache`), keyed by a digest of (base URL,
        model, text): a text answered once is never sent again.

    Attributes
    ----------
    queries : int
        Texts sent so far (cache hits not counted).
    requests : int
        Requests answered.
    prompt_tokens : int
        Prompt tokens the server counted (``usage.prompt_tokens``).
    cache_hits : int
        Texts answered from the cache.
    distribution : bool
        ``False``: the scores carry no ``mean``/``std`` (so Min-K%++ cannot run), read as
        :class:`~miaudit.targets.lm.CausalLMTarget`'s setting of the same name.
    """

    distribution = False

    def __init__(self, base_url: str, model: str, *, auth_env: str | None = None,
                 batch_size: int = 16, max_texts: int | None = None,
                 max_tokens: int | None = None, max_retries: int = 2, timeout: float = 60.0,
                 logprobs: int = 1, cache_dir: str | os.PathLike | None = None) -> None:
        url = str(base_url).rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"The base URL {public_url(url)!r} is not an http(s) URL; write "
                              "it as http://host:port/v1.")
        if not isinstance(model, str) or not model:
            raise ConfigError(f"model must be the served model's name, got {model!r}.")
        for name, value, low in (("batch_size", batch_size, 1), ("max_retries", max_retries, 0),
                                 ("logprobs", logprobs, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}.")
        for name, value in (("max_texts", max_texts), ("max_tokens", max_tokens)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 0):
                raise ConfigError(f"{name} must be an integer >= 0 or None, got {value!r}.")
        if not (isinstance(timeout, int | float) and timeout > 0 and math.isfinite(timeout)):
            raise ConfigError(f"timeout must be a positive number of seconds, got {timeout!r}.")
        if auth_env is not None and not os.environ.get(auth_env):
            raise ConfigError(f"The environment variable {auth_env} (auth_env) is not set or "
                              "empty; export it with the API key.")
        self.base_url = url
        self.model = model
        self.auth_env = auth_env
        self.batch_size = batch_size
        self.max_texts = max_texts
        self.max_tokens = max_tokens
        self.max_retries = max_retries
        self.timeout = float(timeout)
        self.logprobs = logprobs
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.queries = 0
        self.requests = 0
        self.prompt_tokens = 0
        self.cache_hits = 0
        self._reserved_tokens = 0
        self._cache: AnswerCache | None = None

    def __repr__(self) -> str:
        auth = f", auth_env={self.auth_env!r}" if self.auth_env else ""
        return (f"OpenAICompletionsTarget({public_url(self.base_url)!r}, {self.model!r}, "
                f"batch_size={self.batch_size}, max_texts={self.max_texts}, "
                f"max_tokens={self.max_tokens}{auth})")

    @property
    def endpoint(self) -> str:
        """The base URL without credentials, and the model: how messages name it."""
        return f"{public_url(self.base_url)} (model {self.model!r})"

    def stats(self) -> dict:
        """Counters for a report (no credential)."""
        return {"endpoint": public_url(self.base_url), "model": self.model,
                "queries": self.queries, "requests": self.requests,
                "prompt_tokens": self.prompt_tokens, "cache_hits": self.cache_hits}

    # ------------------------------------------------------------------ scoring

    def token_scores(self, texts: list[str]) -> TokenScores:
        """The log-probability of every predicted token of each text.

        Parameters
        ----------
        texts : list of str

        Returns
        -------
        TokenScores
            ``logprobs[i]``, ``(T_i,)``: ``log p(x_t | x_<t)`` of the tokens the server
            scores (higher = likelier); ``mean``, ``std`` and ``token_ids`` are ``None``.

        Raises
        ------
        QueryBudgetError
            Sending the next request would exceed ``max_texts`` or ``max_tokens``.
        OutputError
            The endpoint gives no prompt log-probabilities (see :func:`detect_lm_exposure`)
            or an answer of the wrong shape.
        ConfigError
            The endpoint cannot be reached, refuses the key, or refuses the request.
        """
        from miaudit.targets.lm import _check_texts

        texts = _check_texts(texts)
        answers: dict[str, list] = {}
        keys = {t: self._key(t) for t in texts}
        if self.cache_dir is not None and texts:
            cached = self._open_cache().get_many(set(keys.values()))
            for t, k in keys.items():
                if k in cached:
                    answers[t] = cached[k]
            self.cache_hits += sum(1 for t in texts if t in answers)
        todo = list(dict.fromkeys(t for t in texts if t not in answers))
        if todo:
            openai = _openai()
            with self._client() as client:
                for s in range(0, len(todo), self.batch_size):
                    batch = todo[s : s + self.batch_size]
                    got = self._send(client, openai, batch)
                    answers.update(zip(batch, got, strict=True))
                    if self.cache_dir is not None:
                        self._open_cache().put_many(
                            ((keys[t], a) for t, a in zip(batch, got, strict=True)),
                            self._identity())
        return TokenScores(logprobs=[np.asarray(answers[t], dtype=np.float64) for t in texts])

    def close(self) -> None:
        """Close the cache file."""
        if self._cache is not None:
            self._cache.close()
            self._cache = None

    def __enter__(self) -> OpenAICompletionsTarget:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ internals

    def _client(self):
        """A fresh client (the key read from the environment now, kept nowhere else)."""
        key = os.environ.get(self.auth_env, "") if self.auth_env else _NO_KEY
        if not key:
            raise ConfigError(f"The environment variable {self.auth_env} (auth_env) is not "
                              "set or empty; export it with the API key.")
        return _openai().OpenAI(base_url=self.base_url, api_key=key,
                                max_retries=self.max_retries, timeout=self.timeout)

    def _reserve(self, batch: list[str]) -> None:
        n = len(batch)
        if self.max_texts is not None and self.queries + n > self.max_texts:
            raise QueryBudgetError(
                f"Sending {n} more texts to {self.endpoint} would exceed the budget of "
                f"{self.max_texts} texts ({self.queries} sent); nothing more was sent"
                f"{self._resume_hint()}.")
        bound = sum(token_bound(t) for t in batch)
        if self.max_tokens is not None and self._reserved_tokens + bound > self.max_tokens:
            raise QueryBudgetError(
                f"Sending {n} more texts (up to {bound} prompt tokens) to {self.endpoint} "
                f"could exceed the budget of {self.max_tokens} prompt tokens "
                f"({self._reserved_tokens} reserved so far); nothing more was sent"
                f"{self._resume_hint()}.")
        self.queries += n
        self._reserved_tokens += bound

    def _resume_hint(self) -> str:
        return ("; the texts answered so far are cached, so a run with a larger budget "
                "resumes from them" if self.cache_dir is not None else "")

    def _request(self, client, openai, prompts: list[str], *, max_tokens: int = 0,
                 echo: bool = True, logprobs: int | None = -1):
        """One completions request; the API's errors as one-line miaudit errors."""
        try:
            return client.completions.create(
                model=self.model, prompt=prompts, max_tokens=max_tokens, echo=echo,
                logprobs=self.logprobs if logprobs == -1 else logprobs, temperature=0.0)
        except openai.AuthenticationError as exc:
            raise ConfigError(f"{self.endpoint} refused the API key (401)"
                              f"{' in ' + self.auth_env if self.auth_env else ''}: "
                              f"{self._message(exc)}") from None
        except openai.NotFoundError as exc:
            raise ConfigError(f"{self.endpoint} answered 404: {self._message(exc)} Check the "
                              "base URL (it ends in /v1) and the model name.") from None
        except openai.APIStatusError as exc:
            raise ConfigError(f"{self.endpoint} refused the request ({exc.status_code}): "
                              f"{self._message(exc)}") from None
        except openai.APIConnectionError as exc:
            raise ConfigError(f"Cannot reach {self.endpoint} after {self.max_retries} "
                              f"retries: {self._redact(str(exc))}") from None

    def _send(self, client, openai, batch: list[str]) -> list[list[float]]:
        self._reserve(batch)
        answer = self._request(client, openai, batch)
        self.requests += 1
        usage = getattr(answer, "usage", None)
        self.prompt_tokens += int(getattr(usage, "prompt_tokens", 0) or 0)
        choices = sorted(answer.choices or [], key=lambda c: c.index)
        if len(choices) != len(batch):
            raise OutputError(f"{self.endpoint} answered {len(choices)} choices for "
                              f"{len(batch)} prompts.")
        return [self._prompt_logprobs(c, i) for i, c in enumerate(choices)]

    def _prompt_logprobs(self, choice, i: int) -> list[float]:
        """The prompt's token log-probabilities in one choice, the leading nulls dropped."""
        lp = getattr(choice.logprobs, "token_logprobs", None) if choice.logprobs else None
        if not lp:  # None, or [] (the generated tokens' only, and none was generated)
            raise OutputError(f"{self.endpoint} gave no log-probabilities of the prompt's "
                              "tokens (echo=true with logprobs): it releases text only. "
                              "detect_lm_exposure says what it gives; only sampling-based "
                              "attacks (SaMIA) apply to text.")
        first = next((j for j, v in enumerate(lp) if v is not None), len(lp))
        rest = lp[first:]
        if any(v is None for v in rest):
            raise OutputError(f"{self.endpoint} gave null log-probabilities inside prompt "
                              f"{i} (positions {[j for j, v in enumerate(lp) if v is None]}).")
        return [float(v) for v in rest]

    def _message(self, exc) -> str:
        body = getattr(exc, "body", None)
        msg = body.get("message") if isinstance(body, dict) else None
        return self._redact(str(msg or exc).strip().splitlines()[0] if str(msg or exc).strip()
                            else type(exc).__name__)

    def _redact(self, text: str) -> str:
        secrets = url_secrets(self.base_url)
        if self.auth_env and os.environ.get(self.auth_env):
            secrets.append(os.environ[self.auth_env])
        for s in secrets:
            text = text.replace(s, "***")
        return text.replace(self.base_url, public_url(self.base_url))

    def _identity(self) -> str:
        """SHA-256 of (base URL, model): what decides the answers besides the text."""
        h = hashlib.sha256(f"miaudit-openai-endpoint {_CACHE_FORMAT}\n".encode())
        for part in (self.base_url, self.model, str(self.logprobs)):
            h.update(part.encode() + b"\n")
        return h.hexdigest()

    def _key(self, text: str) -> str:
        h = hashlib.sha256(f"miaudit-openai-cache {_CACHE_FORMAT}\n".encode())
        h.update(self._identity().encode() + b"\n")
        h.update(text.encode("utf-8", "surrogatepass"))
        return h.hexdigest()

    def _open_cache(self) -> AnswerCache:
        if self._cache is None:
            self._cache = AnswerCache(self.cache_dir)  # type: ignore[arg-type]
        return self._cache


class LMExposure(NamedTuple):
    """What a language-model endpoint releases.

    Attributes
    ----------
    setting : str
        ``"token log-probabilities"`` (the prompt's, with ``echo``) or ``"text"``.
    explanation : str
        One line: what the answer showed, and which attacks apply.
    """

    setting: str
    explanation: str


#: The text :func:`detect_lm_exposure` sends by default (any text works).
PROBE_TEXT = "The quick brown fox jumps over the lazy dog."


def detect_lm_exposure(target: OpenAICompletionsTarget, probe: str = PROBE_TEXT
                       ) -> LMExposure:
    """Tell whether an endpoint gives the log-probabilities of a prompt's tokens.

    Sends ``probe`` once with ``echo=true``, ``max_tokens=0`` and ``logprobs`` (counted
    against the budget, never cached); when that gives no prompt log-probabilities, asks
    for a short greedy continuation to check that text comes back.

    Parameters
    ----------
    target : OpenAICompletionsTarget
    probe : str
        A text that is not audited.

    Returns
    -------
    LMExposure
        ``token log-probabilities``: LOSS, zlib, lowercase, Min-K% and the reference attack
        apply (not Min-K%++ or DC-PDD: no distribution, no token ids). ``text``: only
        sampling-based attacks (SaMIA) apply.

    Raises
    ------
    ConfigError
        The endpoint answers neither request (unreachable, wrong key, unknown model).
    """
    if not isinstance(target, OpenAICompletionsTarget):
        raise ConfigError("detect_lm_exposure probes an OpenAICompletionsTarget, got "
                          f"{type(target).__name__}.")
    if not isinstance(probe, str) or not probe:
        raise DataError("The probe must be a non-empty text.")
    openai = _openai()
    with target._client() as client:
        target._reserve([probe])
        refused = None
        try:
            answer = target._request(client, openai, [probe])
            target.requests += 1
        except ConfigError as exc:
            if "(400)" not in str(exc) and "(422)" not in str(exc):
                raise
            answer, refused = None, str(exc)
        if answer is not None and answer.choices:
            try:
                lp = target._prompt_logprobs(answer.choices[0], 0)
            except OutputError:
                lp = []
            if lp:
                return LMExposure(
                    "token log-probabilities",
                    f"{target.endpoint} returns the log-probability of each prompt token "
                    f"({len(lp)} for the probe) with echo: LOSS, zlib, lowercase, Min-K% "
                    "and the reference attack apply (not Min-K%++ or DC-PDD: the API gives "
                    "no next-token distribution and no token ids).")
        target._reserve([probe])
        text = target._request(client, openai, [probe], max_tokens=8, echo=False,
                               logprobs=None)
        target.requests += 1
    why = ("refuses echo with logprobs" if refused else
           "returns no log-probabilities of the prompt's tokens with echo")
    got = (text.choices[0].text if text.choices else "") or ""
    return LMExposure(
        "text", f"{target.endpoint} {why} but generates text ({len(got)} characters for the "
        "probe): LOSS, zlib, Min-K% and the reference attack cannot run; only sampling-based "
        "attacks such as SaMIA (which compare sampled continuations with the true text) "
        "apply.")
