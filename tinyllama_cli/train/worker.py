"""Entry point of each worker process spawned by `torch.distributed.run` (see launch.py).

    python -m tinyllama_cli.train.worker RUN_DIR ACCELERATOR

The run dir is already resolved and written by the launching command. `record` makes torchrun
report the failing rank's traceback; a UserError prints one line and exits 2. The process ends
with `os._exit` after the process group is destroyed: gloo can otherwise abort in its
destructors at interpreter exit ("terminate called without an active exception").
"""

from __future__ import annotations

import os
import sys

from torch.distributed.elastic.multiprocessing.errors import record

from tinyllama_cli.errors import UserError
from tinyllama_cli.train.launch_env import LaunchEnv


@record
def _main(run_dir: str, accelerator: str) -> None:
    from rich.console import Console

    from tinyllama_cli.train.loop import train

    console = Console(width=None if sys.stdout.isatty() else 140)
    train(run_dir, accelerator, console=console)


def main() -> None:
    code = 0
    try:
        _main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "auto")
    except UserError as exc:
        print(f"error (rank {LaunchEnv.read().rank or 0}): {exc}", file=sys.stderr)
        code = 2
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
