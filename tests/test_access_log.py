"""The access log's batched writes: whole lines, even with several processes on one pipe.

Standard error is often a pipe shared by every ``--workers`` process (a container runtime,
systemd). A write of more than PIPE_BUF bytes to a pipe may be interleaved with other
writers', so a batch must go out in whole lines of at most that size. Four real processes
write through the real writer into one real pipe that a slow reader lets fill up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

LINES_PER_WRITER = 3000
WRITERS = 4
WRITER = """
import asyncio, sys
from overplane.http import access_log

async def main() -> None:
    log = access_log.BufferedAccessLog(int(sys.argv[1]), 60)
    for i in range(int(sys.argv[3])):
        log("GET", "/api/crm/appointment/" + "x" * 300, 200, 1.5, f"req_{sys.argv[2]}_{i}", None)
    log.flush()

asyncio.run(main())
"""


def test_lines_from_processes_sharing_a_pipe_never_interleave() -> None:
    read_fd, write_fd = os.pipe()
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(write_fd), str(n), str(LINES_PER_WRITER)],
            pass_fds=(write_fd,),
        )
        for n in range(WRITERS)
    ]
    os.close(write_fd)
    time.sleep(0.5)  # let the pipe fill, so that writers block in the middle of their writes
    with os.fdopen(read_fd, "rb") as reader:
        data = reader.read()
    assert [writer.wait(timeout=60) for writer in writers] == [0] * WRITERS
    lines = data.split(b"\n")
    assert lines.pop() == b""
    ids = {json.loads(line)["request_id"] for line in lines}  # every line whole JSON
    assert len(lines) == len(ids) == WRITERS * LINES_PER_WRITER
