"""The ``intentgym`` command (its console script) and ``python -m intentgym``.

``intentgym --version`` is answered here, before :mod:`intentgym.cli` (which imports Hydra and
OmegaConf) is loaded, so it works wherever the wheel is installed, even without its
dependencies, and returns at once. Every other command goes to :func:`intentgym.cli.main`.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["--version"]:
        from intentgym import __version__

        print(f"intentgym {__version__}")
        return
    from intentgym.cli import main as cli_main

    cli_main(args)


if __name__ == "__main__":
    main()
