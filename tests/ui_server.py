"""The web UI served on 127.0.0.1 at a free port, for the API and browser tests (and the screenshot script)."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(models, limits=None) -> Iterator[tuple[object, str]]:
    """(explorer, url) while the UI serves ``models``; closed and cleaned up afterwards."""
    from ctrlgen.serve.app import make_explorer, start

    ex = make_explorer(list(models), limits, with_shipped=False)
    demo, url = start(ex, "127.0.0.1", free_port())
    try:
        yield ex, url
    finally:
        demo.close()
        ex.store.cleanup()
