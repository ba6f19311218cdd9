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
used comes from the answers' ``usage.prompt_tokens`` (:attr:`prompt_tokens`). Sampling
counts one text per text sampled (its prompt is sent once, with ``n=K``) and the prompt's
bound; ``max_generated_tokens`` bounds the generated tokens (``K * max_tokens`` reserved
per request).

**Sampling (SaMIA).** :meth:`OpenAICompletionsTarget.sample_continuations` draws ``K``
continuations of each text's beginning for SaMIA (Kaneko et al. 2024), which reads text
only, so it also runs against an endpoint that gives no log-probability. The client has
no tokenizer, so the split is by whitespace-separated *words*, as the paper describes it
(the local sampler, :func:`miaudit.targets.sampling.sample_continuations`, splits by
tokens; on a tokenizer whose tokens are whole words the two agree): the prompt is the
text up to the end of its ``P``-th word, ``P = floor(prefix_fraction * W)`` kept within
``[1, W - 1]``, the true continuation the rest. One request per text: ``n=K``,
``temperature`` (1), ``max_tokens`` = :func:`token_bound` of the true continuation (at
least as many tokens as it has, on any byte-level tokenizer) and ``seed`` = a hash of the
text keyed by the audit's seed, so a text's samples do not depend on the other texts or
their order (on servers that honour ``seed``; others sample afresh, and the cache keeps
what they gave). Each sample is cut to as many words as the true continuation (the local
sampler draws as many *tokens*), so that ROUGE-1 recall compares texts of one length.

**Credentials.** ``auth_env`` names an environment variable holding the API key; it is
read when a request is made and never kept in the object, its ``repr``, the cache or a
message.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
import re
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
from miaudit.targets.sampling import Samples

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
    max_generated_tokens : int, optional
        Hard budget on generated tokens (sampling): checked before each request against
        ``n * max_tokens``.
    cache_dir : str or Path, optional
        Folder of the answer cache (the SQLite file of
        :class:`~miaudit.targets.http.cache.AnswerCache`), keyed by a digest of (base URL,
        model, text), or of the whole request for sampling: an answer is never asked twice.

    Attributes
    ----------
    queries : int
        Texts sent so far (cache hits not counted).
    requests : int
        Requests answered.
    prompt_tokens : int
        Prompt tokens the server counted (``usage.prompt_tokens``).
    completion_tokens : int
        Generated tokens the server counted (``usage.completion_tokens``).
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
                 logprobs: int = 1, max_generated_tokens: int | None = None,
                 cache_dir: str | os.PathLike | None = None) -> None:
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
        for name, value in (("max_texts", max_texts), ("max_tokens", max_tokens),
                            ("max_generated_tokens", max_generated_tokens)):
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
        self.max_generated_tokens = max_generated_tokens
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.queries = 0
        self.requests = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cache_hits = 0
        self._reserved_tokens = 0
        self._reserved_generated = 0
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
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "cache_hits": self.cache_hits}

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

    def sample_continuations(self, texts: list[str], *, prefix_fraction: float | None = None,
                             n_samples: int = 10, max_new_tokens: int | None = None,
                             temperature: float = 1.0, top_k: int | None = None,
                             seed: int = 0) -> Samples:
        """``K`` continuations of each text's first words sampled through the endpoint
        (SaMIA's queries; see the module's notes for the split, the request and the cut).

        Parameters
        ----------
        texts : list of str
            Each with at least two words.
        prefix_fraction : float, optional
            Share of each text's words in the prompt, in (0, 1); default 0.5 (the paper's).
        n_samples : int, default 10
            ``K``, sent as ``n``.
        max_new_tokens : int, optional
            ``max_tokens`` of every request; default :func:`token_bound` of the text's true
            continuation.
        temperature : float, default 1.0
            Sent as is; ``0`` is greedy decoding (the same ``K`` samples).
        top_k : int, optional
            Sent as ``top_k`` (an extension that vLLM and others read; not in OpenAI's API).
        seed : int, default 0
            Keys each text's ``seed``.

        Returns
        -------
        Samples
            ``true_text`` and ``sample_text`` (each sample cut to the true continuation's
            word count); ``prompt_ids``, ``true_ids`` and ``sample_ids`` are ``None`` (no
            tokenizer); ``n_tokens`` counts *words*; ``settings["split"]`` is ``"words"``.

        Raises
        ------
        QueryBudgetError
            The next request would exceed a budget (nothing more sent; answers so far are
            cached).
        OutputError
            The endpoint returns no text, or not ``K`` choices.
        ConfigError
            Bad settings, or the endpoint refuses the request (for example ``n`` or
            ``seed``), cannot be reached or refuses the key.
        DataError
            A text with fewer than two words (nothing to prompt with and continue).
        """
        from miaudit.targets.decoding import text_hashes
        from miaudit.targets.lm import _check_texts
        from miaudit.targets.sampling import _prefix_settings, _split, _whole

        fraction, _ = _prefix_settings(prefix_fraction, None)
        n_samples = _whole(n_samples, "n_samples")
        max_new_tokens = _whole(max_new_tokens, "max_new_tokens", optional=True)
        top_k = _whole(top_k, "top_k", optional=True)
        if (isinstance(temperature, bool) or not isinstance(temperature, numbers.Real)
                or not math.isfinite(temperature) or temperature < 0):
            raise ConfigError(f"'temperature' must be a finite number >= 0 (1 = the model's "
                              f"own distribution, 0 = greedy), got {temperature!r}.")
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise ConfigError(f"'seed' must be a whole number, got {seed!r}.")
        seed = int(seed)
        texts = _check_texts(texts)
        if not texts:
            raise DataError("No texts to sample continuations of: 'texts' is empty.")
        spans = [[m.span() for m in _WORD.finditer(t)] for t in texts]
        requests = []
        for i, (t, sp) in enumerate(zip(texts, spans, strict=True)):
            if len(sp) < 2:
                raise DataError(f"Text {i} has {len(sp)} word(s): over an API the prompt is "
                                "the text's first words and SaMIA needs a continuation; drop "
                                "texts of fewer than two words.")
            cut = sp[_split(len(sp), fraction, None) - 1][1]
            requests.append((t[:cut], t[cut:]))
        hashes = text_hashes(texts, seed)
        common = {"n": n_samples, "temperature": float(temperature), "top_k": top_k}
        bodies = [{**common, "prompt": prompt, "seed": int(h) & 0x7FFF_FFFF,
                   "max_tokens": max_new_tokens or token_bound(true)}
                  for (prompt, true), h in zip(requests, hashes, strict=True)]
        raw = self._sampled(bodies)
        if not any(x.strip() for got in raw for x in got):
            raise OutputError(f"{self.endpoint} returned no text: all {n_samples} samples of "
                              f"each of the {len(texts)} texts are empty, so SaMIA has "
                              "nothing to compare; check that the endpoint generates.")
        true_text = [true for _, true in requests]
        sample_text = [[_first_words(x, len(words_of(true))) for x in got]
                       for got, true in zip(raw, true_text, strict=True)]
        settings = {"prefix_fraction": fraction, "prefix_tokens": None, "n_samples": n_samples,
                    "max_new_tokens": max_new_tokens, "temperature": float(temperature),
                    "top_k": top_k, "seed": seed, "split": "words"}
        return Samples(prompt_ids=None, true_ids=None, sample_ids=None, true_text=true_text,
                       sample_text=sample_text,
                       n_tokens=np.array([len(sp) for sp in spans], dtype=np.int64),
                       settings=settings)

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

    def _sampled(self, bodies: list[dict]) -> list[list[str]]:
        """The ``n`` texts answered to each sampling request: from the cache, else sent
        (one request each, in order) and cached."""
        keys = [self._key(json.dumps(b, sort_keys=True), kind="sample") for b in bodies]
        answers: dict[str, list[str]] = {}
        if self.cache_dir is not None:
            answers = self._open_cache().get_many(set(keys))
            self.cache_hits += sum(1 for k in keys if k in answers)
        todo = [k for k in dict.fromkeys(keys) if k not in answers]
        if todo:
            openai = _openai()
            with self._client() as client:
                for k in todo:
                    i = keys.index(k)
                    answers[k] = got = self._send_sampling(client, openai, bodies[i], i)
                    if self.cache_dir is not None:
                        self._open_cache().put_many([(k, got)], self._identity())
        return [list(answers[k]) for k in keys]

    def _send_sampling(self, client, openai, body: dict, i: int) -> list[str]:
        n, max_tokens = body["n"], body["max_tokens"]
        self._reserve([body["prompt"]], generated=n * max_tokens)
        extra = {"top_k": body["top_k"]} if body["top_k"] is not None else None
        answer = self._request(client, openai, [body["prompt"]], max_tokens=max_tokens,
                               echo=False, logprobs=None, temperature=body["temperature"],
                               n=n, seed=body["seed"], extra_body=extra)
        self.requests += 1
        usage = getattr(answer, "usage", None)
        self.prompt_tokens += int(getattr(usage, "prompt_tokens", 0) or 0)
        self.completion_tokens += int(getattr(usage, "completion_tokens", 0) or 0)
        choices = sorted(answer.choices or [], key=lambda c: c.index)
        if len(choices) != n:
            raise OutputError(f"{self.endpoint} answered {len(choices)} choice(s) to a request "
                              f"for n={n} samples of text {i}: it does not honour n, which "
                              "SaMIA's sampling needs.")
        texts = [getattr(c, "text", None) for c in choices]
        if any(not isinstance(t, str) for t in texts):
            raise OutputError(f"{self.endpoint} returned no text for the samples of text {i} "
                              "(a choice without 'text'): SaMIA compares generated text with "
                              "the true continuation.")
        return texts

    def _reserve(self, batch: list[str], generated: int = 0) -> None:
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
        if (self.max_generated_tokens is not None
                and self._reserved_generated + generated > self.max_generated_tokens):
            raise QueryBudgetError(
                f"Sampling up to {generated} more tokens from {self.endpoint} could exceed "
                f"the budget of {self.max_generated_tokens} generated tokens "
                f"({self._reserved_generated} reserved so far); nothing more was sent"
                f"{self._resume_hint()}.")
        self.queries += n
        self._reserved_tokens += bound
        self._reserved_generated += generated

    def _resume_hint(self) -> str:
        return ("; the texts answered so far are cached, so a run with a larger budget "
                "resumes from them" if self.cache_dir is not None else "")

    def _request(self, client, openai, prompts: list[str], *, max_tokens: int = 0,
                 echo: bool = True, logprobs: int | None = -1, temperature: float = 0.0,
                 **more):
        """One completions request (``more``: ``n``, ``seed``, ``extra_body``); the API's
        errors as one-line miaudit errors."""
        more = {k: v for k, v in more.items() if v is not None}
        try:
            return client.completions.create(
                model=self.model, prompt=prompts, max_tokens=max_tokens, echo=echo,
                logprobs=self.logprobs if logprobs == -1 else logprobs,
                temperature=temperature, **more)
        except openai.AuthenticationError as exc:
            raise ConfigError(f"{self.endpoint} refused the API key (401)"
                              f"{' in ' + self.auth_env if self.auth_env else ''}: "
                              f"{self._message(exc)}") from None
        except openai.NotFoundError as exc:
            raise ConfigError(f"{self.endpoint} answered 404: {self._message(exc)} Check the "
                              "base URL (it ends in /v1) and the model name.") from None
        except openai.APIStatusError as exc:
            hint = ""
            if exc.status_code in (400, 422):
                hint = (TEXT_ONLY_HINT if echo and logprobs is not None else
                        " It refuses sampling (n, seed or temperature), which SaMIA needs."
                        if "n" in more else "")
            raise ConfigError(f"{self.endpoint} refused the request ({exc.status_code}): "
                              f"{self._message(exc)}{hint}") from None
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
                              f"tokens (echo=true with logprobs): it releases text only."
                              f"{TEXT_ONLY_HINT}")
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

    def _key(self, text: str, kind: str = "") -> str:
        h = hashlib.sha256(f"miaudit-openai-cache {_CACHE_FORMAT}{kind}\n".encode())
        h.update(self._identity().encode() + b"\n")
        h.update(text.encode("utf-8", "surrogatepass"))
        return h.hexdigest()

    def _open_cache(self) -> AnswerCache:
        if self._cache is None:
            self._cache = AnswerCache(self.cache_dir)  # type: ignore[arg-type]
        return self._cache


#: What a text-only endpoint allows, said by every error that finds one.
TEXT_ONLY_HINT = (" Only SaMIA applies to an endpoint that gives text only: run it alone "
                  "(--attacks samia, or attacks=['samia']; 10 generations per text).")
_WORD = re.compile(r"\S+")


def words_of(text: str) -> list[str]:
    """The whitespace-separated words of ``text``, as SaMIA splits them."""
    return _WORD.findall(text)


def _first_words(text: str, m: int) -> str:
    """``text`` up to the end of its ``m``-th word (all of it when it has fewer)."""
    ends = [w.end() for w in _WORD.finditer(text)]
    if len(ends) <= m:
        return text
    return text[: ends[m - 1]] if m > 0 else ""


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
        apply (not Min-K%++ or DC-PDD: no distribution, no token ids), and SaMIA when named.
        ``text`` ("text only"): only SaMIA (``samia``, ``samia-zlib``) applies.

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
        "probe): text only, so LOSS, zlib, Min-K% and the reference attack cannot run; only "
        "SaMIA (samia, samia-zlib: sampled continuations compared with the true text) "
        "applies: --attacks samia.")
