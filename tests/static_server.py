"""A throw-away local HTTP server for browser tests: URL prefixes mapped to folders."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

from cim.net import free_port


class _Handler(http.server.SimpleHTTPRequestHandler):
    mounts: ClassVar[dict[str, Path]] = {}

    def translate_path(self, path: str) -> str:
        path = path.split("?", 1)[0].split("#", 1)[0]
        for prefix, folder in sorted(self.mounts.items(), key=lambda kv: -len(kv[0])):
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                rest = path[len(prefix.rstrip("/")) :].lstrip("/")
                return str(folder / rest) if folder.is_dir() else str(folder)
        return str(Path("/nonexistent") / path.lstrip("/"))

    def log_message(self, *args) -> None:  # quiet
        pass


@contextmanager
def serve(mounts: dict[str, Path], *, host: str = "127.0.0.1", port: int | None = None) -> Iterator[str]:
    """Serve ``{"/prefix": folder_or_file}`` on 127.0.0.1 (at ``port``, or a free
    one); yields the base URL, named with ``host`` (``localhost`` is another
    origin than ``127.0.0.1`` for a browser)."""
    handler = type(
        "Handler",
        (_Handler,),
        {
            "mounts": mounts,
            "extensions_map": {
                **_Handler.extensions_map,
                ".glb": "model/gltf-binary",
                ".js": "text/javascript",
                ".mjs": "text/javascript",
            },
        },
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port or free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
