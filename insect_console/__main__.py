"""`python -m insect_console` is the same as the `insect-console` command."""

import sys

from insect_console.cli import main

sys.exit(main())
