"""A body gunicorn's reader refuses is a 400 from either app, never a 500 (the worker's framing check
is meant to refuse it first; this is the last word)."""

from __future__ import annotations

import io

import pytest
from gunicorn.http.errors import ChunkMissingTerminator, InvalidChunkSize, NoMoreData

from controller.admission.app import create_app as admission_app
from controller.receiver.app import create_app as receiver_app
from controller.settings import Settings
from controller.store.offline import OfflineStore


class Refusing(io.RawIOBase):
    """A wsgi.input whose read raises what gunicorn's body reader raises on bad framing."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return 0

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def readinto(self, buffer: object) -> int:
        raise self.error


ERRORS = [InvalidChunkSize(b" 2"), ChunkMissingTerminator(b"XX"), NoMoreData()]


@pytest.mark.parametrize("error", ERRORS, ids=lambda error: type(error).__name__)
def test_the_receiver_answers_400(error: Exception) -> None:
    client = receiver_app(Settings(), OfflineStore([])).test_client()
    answer = client.post("/", input_stream=Refusing(error), headers={"X-GitHub-Event": "push",
                                                                     "Transfer-Encoding": "chunked"})
    assert answer.status_code == 400 and answer.get_json()["error"] == "malformed"


@pytest.mark.parametrize("error", ERRORS, ids=lambda error: type(error).__name__)
def test_the_admission_server_answers_400(error: Exception) -> None:
    client = admission_app(Settings(), OfflineStore([])).test_client()
    answer = client.post("/validate/secrets", input_stream=Refusing(error),
                         headers={"Transfer-Encoding": "chunked", "Content-Type": "application/json"})
    assert answer.status_code == 400 and "malformed" in answer.get_json()["message"]
