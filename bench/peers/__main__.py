"""``python -m bench.peers``: the peers phase alone (bench/peers/phase.py)."""

import sys

from bench.peers.phase import main

sys.exit(main())
