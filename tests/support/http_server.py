"""A real HTTP server on 127.0.0.1 serving a folder, with byte ranges, for the download tests.

``interrupt`` names files whose next transfer is cut off halfway (headers promise the whole file,
then the connection closes), as a dropped connection would; ``ignore_ranges`` makes the server
answer every request with the whole file, as servers without range support do.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote


@dataclass
class ServerState:
    folder: Path
    url: str = ""
    interrupt: set[str] = field(default_factory=set)
    ignore_ranges: bool = False
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)


def _handler(state: ServerState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:  # http.server's naming
            name = unquote(self.path.lstrip("/").split("?")[0])
            requested_range = self.headers.get("Range")
            state.requests.append((name, requested_range))
            path = state.folder / name
            if not path.is_file():
                self.send_error(404, "not found")
                return
            data = path.read_bytes()
            start = 0
            match = re.fullmatch(r"bytes=(\d+)-", requested_range or "")
            if match and not state.ignore_ranges:
                start = int(match[1])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            if name in state.interrupt:
                state.interrupt.discard(name)
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return
            self.wfile.write(body)

    return Handler


@contextmanager
def serve(folder: Path) -> Iterator[ServerState]:
    """Serve ``folder`` on a free port of 127.0.0.1 for the duration of the block."""
    state = ServerState(folder)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
