"""The project's one-node Ceph (core.localservers.Ceph) and the RBD driver
under a long run: daemons never outlive the process that started them, and
hundreds of mixed operations from several threads do not abort the process."""

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

STARTER = """
import os, sys
sys.path.insert(0, {repo!r})
from core.localservers import Ceph
cluster = Ceph({folder!r}, mgr=False, die_with_parent=True)
cluster.start()
print(" ".join(str(p.pid) for p in cluster.procs.values()), flush=True)
os.abort()  # dies without stopping anything, as a C++ abort in librbd would
"""


def alive(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_ceph_daemons_die_with_the_process_that_started_them(tmp_path):
    folder = tmp_path / "ceph"
    done = subprocess.run([sys.executable, "-c", STARTER.format(repo=str(REPO), folder=str(folder))],
                          capture_output=True, text=True, timeout=180)
    pids = [int(p) for p in done.stdout.split()]
    assert done.returncode < 0 and len(pids) == 2, done.stderr[-2000:]
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in pids if alive(pid)], "ceph daemons outlived their parent"


def test_hundreds_of_mixed_rbd_operations_do_not_abort(ceph):
    """tests/storage/rbd_stress.py in a subprocess (an abort would take
    pytest down with it): 4 threads × 125 operations on one driver and on
    drivers of their own, every one of them checked."""
    done = subprocess.run([sys.executable, str(REPO / "tests" / "storage" / "rbd_stress.py"), str(ceph.conf),
                           "--threads", "4", "--ops", "125"], capture_output=True, text=True, timeout=1100,
                          cwd=REPO, env={**os.environ, "PYTHONFAULTHANDLER": "1"})
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-5000:])
    assert "500 operations" in done.stdout
