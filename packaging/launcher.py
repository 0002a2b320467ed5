"""Entry script of the packaged application: the same ``studio.app.main`` as ``prime-studio``.

PyInstaller freezes this file into the ``PrimeStudio`` executable (see ``prime_studio.spec``).
"""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()  # a frozen app must not re-run main() in worker processes
    from studio.app import main

    sys.exit(main())
