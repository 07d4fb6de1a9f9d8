"""One module per `atlas` subcommand.

Each module defines `add_arguments(parser)` and `run(args) -> int`; its one-line help is in
atlas/cli.py. They are imported only when their command runs, so `atlas build` never imports torch.
"""
