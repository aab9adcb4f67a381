"""The Inference Endpoint's entry point: the platform imports this file, calls
`EndpointHandler(path)` once, then `handler(data)` per request. The handler itself is
`video_endpoint.endpoint.EndpointHandler`; this file only names it where the platform looks."""

from video_endpoint.endpoint import EndpointHandler

__all__ = ["EndpointHandler"]
