"""``python -m services.cli ...``: the `modelfleet` console script (e.g. the classifier's
retraining trigger runs ``python -m services.cli retrain classifier``)."""

from __future__ import annotations

import sys

from services.cli.console import main

sys.exit(main())
