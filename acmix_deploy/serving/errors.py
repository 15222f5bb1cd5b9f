"""The serving layer's error type: a server that cannot start, or a request it refuses."""

from __future__ import annotations

from acmix_deploy.errors import AcmixDeployError


class ServingError(AcmixDeployError):
    """The server cannot start here (platform, dependencies, ports, options) or stopped unexpectedly."""


class RequestError(AcmixDeployError, ValueError):
    """One inference request is malformed; Triton answers it with this message as an error response."""
