"""The throughput benchmark of the Overplane API server (``make bench``; see ``bench/run.py``)."""
