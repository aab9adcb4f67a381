"""What a family (or the model runtime) raises. The application that serves the families maps
these to its own answers; nothing here knows of HTTP, envelopes or settings."""

from __future__ import annotations


class Refused(ValueError):
    """A request this model cannot serve as asked; `field` names the input (dotted path)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class CannotServe(Refused):
    """What the loaded checkpoint cannot do at all, whatever the values (e.g. video-to-video on
    an image-to-video checkpoint); `field` names the input that asks for it."""


class OutOfMemory(RuntimeError):
    """The accelerator ran out of memory; the message says how to make the request smaller."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ModelLoadError(RuntimeError):
    """The model cannot be loaded: the message names exactly what was looked for (path,
    setting, model id). A server must not start without its model."""
