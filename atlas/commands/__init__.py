"""One module per `atlas` subcommand.

Each module defines `HELP` (one line), `add_arguments(parser)` and `run(args) -> int`.
They are imported only when their command runs, so `atlas build` never imports torch.
"""
