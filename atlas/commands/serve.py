"""`atlas serve`: serve a built site on localhost (http.server)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from atlas import flags
from atlas.flags import Bounded, Flag

# Every flag of `atlas serve`, with its default (`--out` replaces the config's `site`).
FLAGS = (
    Flag("--config", "settings file for the default folder", type=flags.path, note="./atlas.toml",
         options=(("metavar", "FILE"),)),
    Flag("--out", "the built site", key="site", type=flags.path, options=(("metavar", "DIR"),)),
    Flag("--port", "port; 0 picks a free one", default=8000, type=Bounded(0, 65535), options=(("metavar", "N"),)),
    Flag("--host", "address to bind (127.0.0.1: this machine only)", default="127.0.0.1"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    flags.add_flags(parser, FLAGS)


def run(args: argparse.Namespace) -> int:
    from atlas.cli import Terminated
    from atlas.config import load_config
    from atlas.errors import AtlasError
    from atlas.site.build import read_marker
    from atlas.site.serve import make_server

    site = flags.merge(load_config(args.config), args, FLAGS).site
    port, host = flags.value(args, FLAGS, "--port"), flags.value(args, FLAGS, "--host")
    try:
        marker = read_marker(Path(site))
    except AtlasError:  # a damaged marker matters to the next build, not to serving
        marker = None
    server = make_server(site, port, host)
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
