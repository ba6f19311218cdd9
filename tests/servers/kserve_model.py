"""A linear classifier served by KServe's own Python model server (``kserve.ModelServer``,
Open Inference Protocol v2 over REST), for tests/test_kserve_real.py and
benchmarks/http_target.py.

Runs under ``.venv-kserve/bin/python`` (made by scripts/kserve-venv.sh), which has kserve
and numpy but not miaudit. The weights come from an ``.npz`` file: ``coef`` (C, D) or (1, D)
and ``intercept`` (C,) or (1,), as scikit-learn's ``LogisticRegression`` holds them, for a
linear model whose logits are ``X @ coef.T + intercept`` (``[0, z]`` for a binary model); or
``coef_0``, ``intercept_0``, ``coef_1``, ... (each ``(out, in)``, as ``torch.nn.Linear``
holds them) for an MLP with ``tanh`` between the layers. The probabilities are the logits'
softmax, computed as scikit-learn computes it, all in the weights' precision (float64
weights: FP64 tensors in and out; float32: FP32).

Two models are served from the same weights:

``NAME``        metadata ``inputs: [{"name": "features", "datatype": "FP64"}]``; outputs
                ``label`` (INT64 ``[n]``), ``probabilities`` and ``logits`` (FP64 ``[n, C]``)
                (FP32 for float32 weights)
``NAME-plain``  KServe's default metadata (no inputs listed); takes any input tensor (the
                client then sends ``input-0``, FP32) and answers ``probabilities`` only

Usage: python tests/servers/kserve_model.py WEIGHTS.npz --port PORT [--name wine]
"""

from __future__ import annotations

import argparse

# KServe parses sys.argv when imported (parse_known_args): the options below are not its.
import kserve
import numpy as np
from kserve import InferOutput, InferRequest, InferResponse
from kserve.protocol.rest import server as rest_server

HOST = "127.0.0.1"


class Classifier(kserve.Model):
    """Softmax of a linear map or tanh MLP, with or without an input signature in its
    metadata."""

    def __init__(self, name: str, weights: str, *, signature: bool) -> None:
        super().__init__(name)
        self.weights, self.signature = weights, signature
        self.layers: list[tuple[np.ndarray, np.ndarray]] = []
        self.load()

    def load(self) -> bool:
        with np.load(self.weights) as w:
            names = ["coef"] if "coef" in w else sorted(
                (k for k in w if k.startswith("coef_")), key=lambda k: int(k[5:]))
            self.layers = [(w[k], w[k.replace("coef", "intercept")].reshape(-1))
                           for k in names]
        self.dtype = self.layers[0][0].dtype
        self.datatype = {np.float64: "FP64", np.float32: "FP32"}[self.dtype.type]
        self.ready = True
        return self.ready

    def get_input_types(self) -> list[dict]:
        if not self.signature:
            return []
        return [{"name": "features", "datatype": self.datatype,
                 "shape": [-1, self.layers[0][0].shape[1]]}]

    def get_output_types(self) -> list[dict]:
        if not self.signature:
            return []
        c = max(self.layers[-1][0].shape[0], 2)
        return [{"name": "label", "datatype": "INT64", "shape": [-1]},
                {"name": "probabilities", "datatype": self.datatype, "shape": [-1, c]},
                {"name": "logits", "datatype": self.datatype, "shape": [-1, c]}]

    def predict(self, payload: InferRequest, headers: dict | None = None) -> InferResponse:
        (tensor,) = payload.inputs
        if self.signature and tensor.name != "features":
            raise kserve.errors.InvalidInput(f"unexpected input {tensor.name!r}; the model's "
                                             "input is 'features'")
        z = tensor.as_numpy().astype(self.dtype)  # a typed input, as in a model graph
        for i, (coef, intercept) in enumerate(self.layers):
            z = (np.tanh(z) if i else z) @ coef.T + intercept
        if z.shape[1] == 1:  # binary: P(class 1) = sigmoid(z)
            z = np.hstack([np.zeros_like(z), z])
        e = np.exp(z - z.max(axis=1, keepdims=True))  # scikit-learn's softmax
        proba = e / e.sum(axis=1, keepdims=True)
        arrays = {"probabilities": proba}
        if self.signature:
            arrays = {"label": np.argmax(z, axis=1).astype(np.int64), **arrays, "logits": z}
        outputs = []
        for name, arr in arrays.items():
            out = InferOutput(name=name, shape=list(arr.shape),
                              datatype="INT64" if arr.dtype.kind == "i" else self.datatype)
            out.set_data_from_numpy(arr, binary_data=False)
            outputs.append(out)
        return InferResponse(response_id=payload.id or "", model_name=self.name,
                             infer_outputs=outputs)


def _bind_loopback() -> None:
    """kserve 0.21's RESTServer always listens on 0.0.0.0: listen on 127.0.0.1 only."""
    init = rest_server.RESTServer.__init__

    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.config.host = HOST

    rest_server.RESTServer.__init__ = __init__


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="wine")
    args, _ = parser.parse_known_args()
    _bind_loopback()
    models = [Classifier(args.name, args.weights, signature=True),
              Classifier(f"{args.name}-plain", args.weights, signature=False)]
    kserve.ModelServer(http_port=args.port, enable_grpc=False, workers=1,
                       enable_latency_logging=False).start(models)


if __name__ == "__main__":
    main()
