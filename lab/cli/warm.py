"""`python -m lab.cli.warm <kind>`: (internal) a warm server that forks the workers of a parent's child runs
(lab/engine/warm.py). Started by the parent, not by hand; its workers' events are mirrored like a worker's."""
from __future__ import annotations

import sys

from lab import mirrors
from lab.engine import warm

if __name__ == "__main__":
    mirrors.attach()
    sys.exit(warm.serve(sys.argv[1]))
