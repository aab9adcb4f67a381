"""The Inference Endpoint's entry point: the platform imports this file, calls
`EndpointHandler(path)` once, then `handler(data)` per request. The handler itself is
`video_endpoint.endpoint.EndpointHandler`; this file only names it where the platform looks."""

import os
import sys

# The packages beside this file must import however the file itself was loaded: the old toolkit puts
# the repository first on sys.path, but hf-serve loads this file by path (`spec_from_file_location`)
# from a directory that is neither on sys.path nor the working directory.
_REPOSITORY = os.path.dirname(os.path.abspath(__file__))
if _REPOSITORY not in sys.path:
    sys.path.insert(0, _REPOSITORY)

from video_endpoint.endpoint import EndpointHandler  # noqa: E402

__all__ = ["EndpointHandler"]
