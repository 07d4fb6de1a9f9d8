"""`atlas serve`: serve a built site on localhost (http.server)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="settings file for the default folder (default: ./atlas.toml)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="the built site (default from the config: site)")
    parser.add_argument("--port", type=int, default=8000, metavar="N", help="port (default 8000; 0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")


def run(args: argparse.Namespace) -> int:
    from atlas.config import load_config
    from atlas.site.serve import make_server

    site = args.out if args.out is not None else load_config(args.config).site
    server = make_server(site, args.port, args.host)
    host, port = server.server_address[:2]
    print(f"atlas serve: serving {site} at http://{host}:{port}/ (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("atlas serve: stopped")
    finally:
        server.server_close()
    return 0
