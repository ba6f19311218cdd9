"""Query a deployed prediction endpoint over HTTP: :class:`HTTPTarget`.

An :class:`HTTPTarget` is a :class:`~miaudit.targets.adapters.Target` whose outputs come
from a JSON web API, so a deployed model can be audited exactly like a local one:
``miaudit.audit(data=ds, model=HTTPTarget(url), members=mask)``. It sends the records in
batches, a few requests at a time, within a rate limit; retries (tenacity) with
exponential backoff on 429 (honouring ``Retry-After``), 5xx, timeouts, dropped or refused
connections and 200 answers that cannot be read; counts every row sent against an optional
hard budget; and caches the answers on disk so that a re-run or a resumed run sends
nothing already answered (checked first against the endpoint, to float32 rounding).
:func:`detect_exposure` tells from the answers what the endpoint releases
(``probabilities``, ``logits``, ``top-k:K``, ``rounded:D`` or ``label``).

Request and response mapping
----------------------------
Request (``request``): by default the body is ``{"instances": [[x11, x12, ...], ...]}``,
one list of feature values per record. A dotted path names another place
(``request="inputs"`` gives ``{"inputs": [...]}``, ``request="data.rows"`` gives
``{"data": {"rows": [...]}}``); a callable ``request(rows: ndarray) -> JSON object`` builds
any body.

Response (``response``): by default the JSON body holds one of

==============================================  ==========================================
``{"predictions": [item, ...]}``                one item per record (below)
``{"probabilities": [[p, ...], ...]}``          probability vectors
``{"logits": [[z, ...], ...]}``                 logits
``{"top_k": [[{"label": i, "probability": p}, ...], ...]}``  top-k lists
``{"labels": [i, ...]}``                        labels only
==============================================  ==========================================

and an item of ``predictions`` is a bare list of numbers (a probability vector; taken as
logits when a value lies outside [0, 1]), ``{"probabilities": [...]}``,
``{"logits": [...]}``, ``{"top_k": [{"label": i, "probability": p}, ...]}``,
``{"label": i}`` or a bare label. A label is a class index ``0..C-1`` or, with
``classes``, a class name. A dotted path (``response="output.scores"``) names the list of
items elsewhere (its last key, when one of the names above, says what the items are); a
callable ``response(json) -> list of items (or an (N, C) array of probabilities)`` reads
any shape.

Wire-format presets (``protocol``): ``kserve-v2`` (the Open Inference Protocol of KServe,
Triton and MLServer: the model's ``http://HOST:PORT/v2/models/NAME``), ``tf-serving`` (the
model's ``http://HOST:8501/v1/models/NAME``) and ``mlflow`` (``mlflow models serve``'s
``http://HOST:PORT``) set the URL, the request body and the reading of the answer (see
:mod:`miaudit.targets.http.protocols`); an answer that does not fit says which format it
looks like (:func:`~miaudit.targets.http.wire.sniff_protocol`).

How the answers become outputs: probability vectors whose rows do not sum to 1 (rounded
answers) are renormalised (a row of zeros becomes uniform); a top-k answer becomes a full
vector with the K released probabilities and the leftover mass spread evenly over the
other classes (never above the K-th probability), which is exactly what the ``top-k:K``
exposure assumes; a label becomes a one-hot vector.

Credentials: ``auth_env`` names an environment variable whose value is sent in the
``auth_header`` header. The value is read from the environment for each request and is
never stored in the object, the cache, logs or error messages (a server message that
echoes it is redacted). User names, passwords and credential-like query parameters
(``api_key=...``, ``token=...``) in the URL are left out of the cache key and of every
message. Proxies (``HTTPS_PROXY``) and CA bundles (``SSL_CERT_FILE``) come from the
environment, as for any httpx client; redirects are not followed.
"""

from miaudit.targets.http.client import HTTPTarget, QueryCount, public_url
from miaudit.targets.http.detection import DetectedExposure, detect_exposure

__all__ = ["DetectedExposure", "HTTPTarget", "QueryCount", "detect_exposure", "public_url"]
