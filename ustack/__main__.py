"""`python -m ustack ...` is the `ustack` command."""

import sys

from ustack.cli.main import main

sys.exit(main())
