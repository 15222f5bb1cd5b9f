"""Serving: a real Triton Inference Server in front of the Predictor (``acmix-deploy serve``).

Two Triton models per artifact, over HTTP and gRPC (KServe v2) with Prometheus metrics:
``NAME`` takes preprocessed tensors and returns logits, gathered by Triton's dynamic batcher;
``NAME_images`` takes encoded images and returns the top-k classes exactly as
``Predictor.predict``. The server is the one the ``serve`` extra's ``nvidia-pytriton`` ships.

``serve(artifact, options)`` blocks until SIGINT/SIGTERM; ``Server(artifact, options).start()``
(or ``with Server(...) as server``) returns once ready and ``stop()`` ends it.
"""

from .errors import RequestError, ServingError
from .server import IMAGES_SUFFIX, ServeOptions, Server, serve

__all__ = ["IMAGES_SUFFIX", "RequestError", "ServeOptions", "Server", "ServingError", "serve"]
