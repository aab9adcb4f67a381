"""video_endpoint/errors.py: one closed set of error types, each with its HTTP status."""

from __future__ import annotations

import importlib
from pathlib import Path

from video_endpoint import errors, uploads
from video_endpoint.errors import OPENAI_STATUS, STATUS, HandlerError

ROOT = Path(__file__).resolve().parents[2]


def subclasses(cls: type) -> set[type]:
    return {sub for direct in cls.__subclasses__() for sub in {direct, *subclasses(direct)}}


def test_every_error_type_is_in_the_one_closed_set_with_a_status():
    for module in ROOT.joinpath("video_endpoint").glob("[!_]*.py"):  # every module that could define one
        importlib.import_module(f"video_endpoint.{module.stem}")

    defined = {cls.type for cls in {HandlerError, *subclasses(HandlerError)}}
    assert defined == set(STATUS) == set(OPENAI_STATUS)
    assert all(cls.__module__ == "video_endpoint.errors" for cls in subclasses(HandlerError))
    assert uploads.UploadFailed is errors.UploadFailed  # still importable where it was


def test_an_envelope_names_type_field_and_message():
    assert errors.UploadFailed("could not upload mp4", field="upload.mp4").envelope() == {
        "ok": False, "error": {"type": "upload_failed", "field": "upload.mp4", "message": "could not upload mp4"}}
    assert errors.envelope_of({"type": "busy", "field": None, "message": "m"})["ok"] is False
