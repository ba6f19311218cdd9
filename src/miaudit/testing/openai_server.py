"""A local OpenAI-compatible completions server over a causal LM, for tests and demos.

It answers the legacy completions protocol that many inference servers implement
(``POST /v1/completions``, ``GET /v1/models``), enough to audit a model through an API
with :class:`~miaudit.targets.openai.OpenAICompletionsTarget`. Standard library only
(:class:`http.server.ThreadingHTTPServer`), on 127.0.0.1 by default; not a production
server.

Conventions (those of servers that put the tokenizer's BOS in front of the prompt):
every prompt is tokenised as :func:`miaudit.targets.lm.token_scores` does it (the BOS, or
GPT-2's ``<|endoftext|>``, then the text's tokens without special tokens). With
``echo=true`` and ``logprobs`` set, ``choices[i].logprobs`` lists every prompt token
(``tokens``, the BOS first), ``token_logprobs`` (``null`` for the BOS, which nothing
predicts, then ``log p(x_t | x_<t)`` of each text token), ``top_logprobs`` and
``text_offset``. ``max_tokens > 0`` appends a greedy (``temperature=0``) or sampled
continuation, stopped at the tokenizer's EOS (``finish_reason`` ``"stop"``): ``n``
continuations per prompt (``choices[i * n + k]``), drawn from one generator seeded with the
request's ``seed`` (0 when absent) for each prompt, so a prompt's samples do not depend on
the other prompts of the request; ``top_k`` (vLLM's extension) keeps the ``top_k`` highest
logits. ``usage.prompt_tokens`` counts each prompt once.

``prompt_logprobs`` chooses what the server releases about the prompt: ``"echo"`` (the
above), ``"none"`` (``echo`` returns the prompt's text but ``logprobs`` covers generated
tokens only, as hosted chat-era models do) or ``"refuse"`` (400 for ``echo`` with
``logprobs``).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from miaudit.errors import ConfigError
from miaudit.testing._background import BackgroundServer, write_json

__all__ = ["OpenAICompletionsServer", "OpenAIServerStats"]

_MAX_BODY = 64 * 1024 * 1024
PROMPT_LOGPROBS = ("echo", "none", "refuse")


@dataclass
class OpenAIServerStats:
    """What the server saw: ``requests`` (completions requests, any outcome), ``prompts``
    (prompts in the answered ones), ``unauthorized`` (401 answers)."""

    requests: int = 0
    prompts: int = 0
    unauthorized: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for key, value in counts.items():
                setattr(self, key, getattr(self, key) + value)


class _BadRequest(Exception):
    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code = status, code


class OpenAICompletionsServer(BackgroundServer):
    """Causal LMs served under the OpenAI completions protocol.

    Parameters
    ----------
    models : dict of str to (model, tokenizer)
        The served models by name (``model`` in the request).
    prompt_logprobs : {"echo", "none", "refuse"}, default "echo"
        What ``echo`` with ``logprobs`` gives (see the module's docstring).
    api_key_env : str, optional
        Environment variable holding the expected key (``Authorization: Bearer KEY``);
        requests without it get 401. Default: no key needed.
    max_batch : int, optional
        Most prompts per request (400 above it); default: no limit.
    fail_first : int, default 0
        Answer the first ``fail_first`` completions requests with ``503`` (``Retry-After:
        0``), to try a client's retries.
    host : str, default "127.0.0.1"
    port : int, default 0
        0 picks a free port (see :attr:`base_url`).
    """

    def __init__(self, models: dict[str, tuple[Any, Any]], *, prompt_logprobs: str = "echo",
                 api_key_env: str | None = None, max_batch: int | None = None,
                 fail_first: int = 0, host: str = "127.0.0.1", port: int = 0) -> None:
        if prompt_logprobs not in PROMPT_LOGPROBS:
            raise ConfigError(f"prompt_logprobs must be one of {', '.join(PROMPT_LOGPROBS)}, "
                              f"got {prompt_logprobs!r}.")
        if not models:
            raise ConfigError("models is empty: serve at least one (model, tokenizer).")
        self.models = dict(models)
        self.prompt_logprobs = prompt_logprobs
        self.max_batch = max_batch
        self.fail_first = fail_first
        self.stats = OpenAIServerStats()
        self._model_lock = threading.Lock()  # one forward pass at a time
        self._listen(_Server, _Handler, host, port, secret_env=api_key_env,
                     option="api_key_env")

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/v1``, the client's base URL."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def authorized(self, header: str | None) -> bool:
        return self._matches_secret(header, prefix="Bearer ")

    # ------------------------------------------------------------------ the protocol

    def list_models(self) -> dict:
        return {"object": "list", "data": [{"id": name, "object": "model", "created": 0,
                                            "owned_by": "miaudit"} for name in self.models]}

    def complete(self, body: dict) -> dict:
        """The answer to one ``/v1/completions`` body (raises :class:`_BadRequest`)."""
        name = body.get("model")
        if name not in self.models:
            raise _BadRequest(404, f"The model {name!r} does not exist.", "model_not_found")
        prompts = body.get("prompt")
        if isinstance(prompts, str):
            prompts = [prompts]
        if (not isinstance(prompts, list) or not prompts
                or not all(isinstance(p, str) for p in prompts)):
            raise _BadRequest(400, "'prompt' must be a string or a non-empty list of strings.")
        if self.max_batch is not None and len(prompts) > self.max_batch:
            raise _BadRequest(400, f"At most {self.max_batch} prompts per request.")
        max_tokens = body.get("max_tokens", 16)
        if max_tokens is None:
            max_tokens = 16
        if not isinstance(max_tokens, int) or max_tokens < 0:
            raise _BadRequest(400, "'max_tokens' must be an integer >= 0.")
        echo = bool(body.get("echo", False))
        logprobs = body.get("logprobs")
        if logprobs is not None and (not isinstance(logprobs, int) or not 0 <= logprobs <= 5):
            raise _BadRequest(400, "'logprobs' must be an integer from 0 to 5.")
        if echo and logprobs is not None and self.prompt_logprobs == "refuse":
            raise _BadRequest(400, "echo is not supported with logprobs for this model.")
        temperature = body.get("temperature", 1.0)
        temperature = 1.0 if temperature is None else temperature
        n, seed, top_k = body.get("n", 1), body.get("seed"), body.get("top_k")
        n = 1 if n is None else n
        checks = (("temperature", temperature, isinstance(temperature, int | float)
                   and not isinstance(temperature, bool) and 0 <= temperature <= 2),
                  ("n", n, isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 128),
                  ("seed", seed, seed is None or isinstance(seed, int)),
                  ("top_k", top_k, top_k is None or (isinstance(top_k, int) and
                                                     (top_k >= 1 or top_k == -1))))
        for key, value, ok in checks:
            if not ok:
                raise _BadRequest(400, f"Invalid '{key}': {value!r}.")
        model, tokenizer = self.models[name]
        from miaudit.targets.lm import token_scores

        with self._model_lock:
            scores = token_scores(model, tokenizer, prompts, distribution=False,
                                  batch_size=min(len(prompts), 32))
            rows = [self._choices(model, tokenizer, p, lp, max_tokens=max_tokens, echo=echo,
                                  logprobs=logprobs, temperature=float(temperature), seed=seed,
                                  n=n, top_k=None if top_k in (None, -1) else top_k)
                    for p, lp in zip(prompts, scores.logprobs, strict=True)]
        choices = [{"index": i, **c} for i, c in enumerate(c for r in rows for c in r[0])]
        prompt_tokens = sum(r[1] for r in rows)
        completion_tokens = sum(r[2] for r in rows)
        return {"id": f"cmpl-{time.monotonic_ns()}", "object": "text_completion",
                "created": int(time.time()), "model": name, "choices": choices,
                "usage": {"prompt_tokens": prompt_tokens,
                          "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens}}

    def _choices(self, model, tokenizer, prompt: str, lp, *, max_tokens: int, echo: bool,
                 logprobs: int | None, temperature: float, seed, n: int, top_k: int | None
                 ) -> tuple[list[dict], int, int]:
        """The ``n`` choices of one prompt (``lp``: its token log-probabilities), its token
        count and the tokens generated."""
        from miaudit.targets.lm import _encode, _start_token

        ids = _encode(tokenizer, [prompt])[0]
        if len(lp) < len(ids) - 1:  # a tokenizer without BOS: the first token is context
            lp = [None] * (len(ids) - 1 - len(lp)) + list(lp)
        prompt_lp = [None] + [None if v is None else float(v) for v in lp]
        out, generated = [], 0
        for new_ids, new_lp, stopped in _generate(
                model, ids, max_tokens, temperature, seed, n=n, top_k=top_k,
                eos=getattr(tokenizer, "eos_token_id", None)):
            generated += len(new_ids) + int(stopped)
            text = tokenizer.decode(new_ids) if new_ids else ""
            choice: dict = {"text": (prompt if echo else "") + text, "logprobs": None,
                            "finish_reason": "stop" if stopped else "length"}
            if logprobs is not None:
                shown_ids, shown_lp = list(new_ids), list(new_lp)
                if echo and self.prompt_logprobs == "echo":
                    shown_ids, shown_lp = ids + shown_ids, prompt_lp + shown_lp
                tokens = [tokenizer.decode([t]) for t in shown_ids]
                # the BOS stands at offset 0 and takes no room in the text
                skip = int(len(shown_ids) > len(new_ids) and _start_token(tokenizer) is not None)
                offsets, at = [], 0
                for i, tok in enumerate(tokens):
                    offsets.append(at)
                    at += 0 if i < skip else len(tok)
                choice["logprobs"] = {
                    "tokens": tokens, "token_logprobs": shown_lp,
                    "top_logprobs": [None if v is None else {t: v}
                                     for t, v in zip(tokens, shown_lp, strict=True)],
                    "text_offset": offsets}
            out.append(choice)
        return out, len(ids), generated


def _generate(model, ids: list[int], max_tokens: int, temperature: float, seed, *,
              n: int = 1, top_k: int | None = None, eos: int | None = None
              ) -> list[tuple[list[int], list[float], bool]]:
    """``n`` continuations of up to ``max_tokens`` new tokens after ``ids`` (greedy at
    temperature 0, else sampled from one generator seeded with ``seed``), each stopped at
    ``eos`` (not included): per continuation its ids, their log-probabilities and whether
    it stopped."""
    if max_tokens == 0:
        return [([], [], False) for _ in range(n)]
    import torch

    gen = torch.Generator().manual_seed(int(seed) if isinstance(seed, int) else 0)
    context = getattr(getattr(model, "config", None), "n_positions", None) or 1024
    seq = torch.as_tensor([list(ids)] * n)
    out = [([], [], False) for _ in range(n)]
    from miaudit.targets.decoding import _cache_of

    key, past = "past_key_values", None  # the key-value cache while the sequence fits
    with torch.no_grad():
        for _ in range(max_tokens):
            if seq.shape[1] <= context:
                fed = seq if past is None else seq[:, -1:]
                answer = model(input_ids=fed, use_cache=True,
                               **({} if past is None else {key: past}))
                key, past = _cache_of(answer)
            else:  # a sliding window: recomputed in full
                answer = model(input_ids=seq[:, -context:])
            logits = answer.logits[:, -1].float()
            logp = torch.log_softmax(logits, dim=-1)
            if temperature <= 0:
                nxt = torch.argmax(logp, dim=-1)
            else:
                scaled = logits / temperature
                if top_k is not None and top_k < scaled.shape[-1]:
                    kth = torch.topk(scaled, top_k, dim=-1).values[:, -1:]
                    scaled = scaled.masked_fill(scaled < kth, float("-inf"))
                nxt = torch.multinomial(torch.softmax(scaled, dim=-1), 1, generator=gen)[:, 0]
            seq = torch.cat([seq, nxt[:, None]], dim=1)
            for r in range(n):
                new_ids, new_lp, stopped = out[r]
                t = int(nxt[r])
                if stopped:
                    continue
                if eos is not None and t == eos:
                    out[r] = (new_ids, new_lp, True)
                    continue
                new_ids.append(t)
                new_lp.append(float(logp[r, t]))
            if all(o[2] for o in out):
                break
    return out


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    app: OpenAICompletionsServer

    def handle_error(self, request, client_address) -> None:
        pass  # a client that went away is normal here


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    server_version = "miaudit-openai-serve"
    sys_version = ""

    def log_message(self, format: str, *args) -> None:
        pass

    def _send(self, status: int, body: dict, headers: dict | None = None) -> None:
        write_json(self, status, json.dumps(body, separators=(",", ":")).encode(), headers)

    def _error(self, status: int, message: str, code: str | None = None) -> None:
        self._send(status, {"error": {"message": message, "type": "invalid_request_error",
                                      "param": None, "code": code}})

    def do_GET(self) -> None:
        app = self.server.app
        if self.path.split("?", 1)[0].rstrip("/") != "/v1/models":
            self._error(404, "Not found.")
        elif not app.authorized(self.headers.get("Authorization")):
            app.stats.add(unauthorized=1)
            self._error(401, "Incorrect API key provided.", "invalid_api_key")
        else:
            self._send(200, app.list_models())

    def do_POST(self) -> None:
        app = self.server.app
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if 0 < length <= _MAX_BODY else b""
        if self.path.split("?", 1)[0].rstrip("/") != "/v1/completions":
            self._error(404, "Not found.")
            return
        app.stats.add(requests=1)
        if app.stats.requests <= app.fail_first:
            self._send(503, {"error": {"message": "Overloaded, try again.", "type":
                                       "server_error", "param": None, "code": None}},
                       {"Retry-After": "0"})
            return
        if not app.authorized(self.headers.get("Authorization")):
            app.stats.add(unauthorized=1)
            self._error(401, "Incorrect API key provided.", "invalid_api_key")
            return
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError
        except ValueError:
            self._error(400, "The body must be a JSON object.")
            return
        try:
            answer = app.complete(body)
        except _BadRequest as exc:
            self._error(exc.status, str(exc), exc.code)
            return
        app.stats.add(prompts=len(answer["choices"]))
        self._send(200, answer)
