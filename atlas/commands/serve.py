"""`atlas serve`: serve a built site on localhost (http.server)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="settings file for the default folder (default: ./atlas.toml)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="the built site (default from the config: site)")
    parser.add_argument("--port", type=int, default=8000, metavar="N", help="port (default 8000; 0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")


def run(args: argparse.Namespace) -> int:
    from atlas.cli import Terminated
    from atlas.config import load_config
    from atlas.errors import AtlasError
    from atlas.site.build import read_marker
    from atlas.site.serve import make_server

    site = args.out if args.out is not None else load_config(args.config).site
    try:
        marker = read_marker(Path(site))
    except AtlasError:  # a damaged marker matters to the next build, not to serving
        marker = None
    server = make_server(site, args.port, args.host)
    host, port = server.server_address[:2]
    try:  # from the first line on, a stop signal is how serving ends
        print(f"atlas serve: serving {site} at http://{host}:{port}/ (Ctrl-C stops)", flush=True)
        if marker is not None and not marker.complete:  # pages are written in place: some may be old
            print(f"atlas serve: warning: the build of {site} did not finish; "
                  "run `atlas build` again for a complete site", file=sys.stderr, flush=True)
        server.serve_forever()
    except (KeyboardInterrupt, Terminated):  # the way to stop serving, not an interrupted job
        print("atlas serve: stopped serving", flush=True)
    finally:
        server.server_close()
    return 0
