"""Entry script of the packaged application: ``studio.app.main``, or the ``prime`` CLI by name.

PyInstaller freezes this file into the ``PrimeStudio`` executable (see ``prime_studio.spec``).
Started under any name it opens the studio (the same ``studio.app.main`` as ``prime-studio``);
started through a link named ``prime`` (``prime.exe``) it is the command-line interface
(``engine.cli.main``, the same as the ``prime`` script of a pip install). The Debian package's
``/usr/bin/prime`` and the ``prime`` link in the Linux app folder are such links: one bundle,
one copy of torch and Qt, two programs.
"""

import multiprocessing
import os
import sys

CLI_NAMES = ("prime", "prime.exe")


def wants_cli(argv0: str) -> bool:
    """True when the program was started under the CLI's name (``prime``), not the studio's."""
    return os.path.basename(argv0).lower() in CLI_NAMES


if __name__ == "__main__":
    multiprocessing.freeze_support()  # a frozen app must not re-run main() in worker processes
    if wants_cli(sys.argv[0] if sys.argv else ""):
        from engine.cli import main as cli_main

        sys.exit(cli_main())
    from studio.app import main

    sys.exit(main())
