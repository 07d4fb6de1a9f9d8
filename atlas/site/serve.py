"""Serving a built site on localhost with the standard library's http.server."""

from __future__ import annotations

import functools
import re
import sys
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from atlas.errors import AtlasError

MAX_PATH = 4096  # longer request paths are no site path (the site's own are under 100 characters)


# A relative URL of an href or src attribute, or the root the script puts before the search's links
# (data-root): not absolute, not rooted, not a fragment
_RELATIVE = re.compile(rb'(\s(?:href|src|data-root)=")(?![a-zA-Z][a-zA-Z0-9+.-]*:|/|#)')


def rooted(page: bytes, prefix: str) -> bytes:
    """The root's 404.html with its relative links rooted at `prefix`, the site's address path ("/" at a
    host's root, "/REPO/" for a GitHub project site): it answers a missing path at any depth
    (classes/9999.html), where the browser would resolve relative links against that path's folder."""
    start = prefix.encode()
    return _RELATIVE.sub(lambda found: found.group(1) + start, page)


class _SiteHandler(SimpleHTTPRequestHandler):
    """Serves files, answers a missing path with the site's 404.html, and logs nothing."""

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".webp": "image/webp", ".js": "text/javascript",
                      ".json": "application/json", ".svg": "image/svg+xml"}

    def send_head(self):  # noqa: ANN201 - the base class's signature
        # A path with a NUL byte, undecodable bytes (unquoted to surrogates) or a name too long for
        # the file system makes os calls raise ValueError inside the base class: a bad request.
        if len(self.path) > MAX_PATH:
            self.send_error(414)
            return None
        try:
            return super().send_head()
        except ValueError:
            self.send_error(400, "malformed path")
            return None

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        page = Path(self.directory) / "404.html"
        if code != 404 or not page.is_file():
            super().send_error(code, message, explain)
            return
        body = rooted(page.read_bytes(), "/")  # served at the host's root
        self.send_response(404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


class SiteServer(ThreadingHTTPServer):
    """A threading HTTP server that lets a client hang up quietly: a browser that cancels a picture's
    download (the reader moved on) is no error of the server, and a traceback in the terminal would
    say it was."""

    def handle_error(self, request, client_address) -> None:  # noqa: ANN001 - socketserver's signature
        if isinstance(sys.exc_info()[1], ConnectionError):  # broken pipe, reset or aborted by the client
            return
        super().handle_error(request, client_address)


def make_server(site: Path, port: int = 8000, host: str = "127.0.0.1") -> SiteServer:
    """A server for `site` bound to host:port (port 0: a free one; see `server.server_address`)."""
    site = Path(site)
    if not (site / "index.html").is_file():
        raise AtlasError(f"{site} holds no built site (no index.html): run `atlas build` first or pass --out DIR")
    handler = functools.partial(_SiteHandler, directory=str(site))
    try:
        return SiteServer((host, port), handler)
    except OSError as exc:
        raise AtlasError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); "
                         "pick another with --port, or 0 for any free port") from exc
