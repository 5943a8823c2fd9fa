"""``python -m medseg_eval.cli``: the console script (``torchrun -m medseg_eval.cli train ...`` too)."""

import sys

from . import main

sys.exit(main())
