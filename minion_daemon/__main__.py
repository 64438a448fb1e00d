"""``python -m minion_daemon``: the same as the ``minion-daemon`` command."""

from __future__ import annotations

import sys

from minion_daemon.cli import main

sys.exit(main())
