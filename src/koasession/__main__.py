"""``python -m koasession``: the same as the ``koasession`` command."""

import sys

from .cli import main

sys.exit(main())
