#!/usr/bin/env python3
"""Starts N local ranks of a Python script with the torch.distributed env://
variables (MASTER_ADDR=127.0.0.1, a free MASTER_PORT, RANK, LOCAL_RANK,
WORLD_SIZE) and python/ on PYTHONPATH. Exits with the first failing rank's
status, stopping the others; torchrun stands in for this elsewhere.

    /usr/bin/python3 python/launch.py -n 4 examples/train_ddp.py --backend ppu
"""
import argparse
import os
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(nranks, argv, timeout=None, env=None):
    """Runs argv (a python script and its arguments) as nranks processes;
    returns 0 or the first nonzero exit status."""
    base = dict(os.environ if env is None else env)
    base.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()),
                WORLD_SIZE=str(nranks))
    base["PYTHONPATH"] = os.pathsep.join(p for p in (HERE, base.get("PYTHONPATH")) if p)
    procs = []
    for r in range(nranks):
        e = dict(base, RANK=str(r), LOCAL_RANK=str(r))
        procs.append(subprocess.Popen([sys.executable] + list(argv), env=e))
    deadline = time.monotonic() + timeout if timeout else None
    rc = 0
    while procs:
        for p in list(procs):
            code = p.poll()
            if code is None:
                continue
            procs.remove(p)
            if code and not rc:
                rc = code
                _stop(procs)
        if deadline and time.monotonic() > deadline and procs:
            print(f"launch: ranks still running after {timeout} s; stopping them",
                  file=sys.stderr)
            _stop(procs)
            rc = rc or 124
        time.sleep(0.02)
    return rc


def _stop(procs):
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--nranks", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=None, help="seconds before stopping all")
    ap.add_argument("script", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    if not a.script:
        ap.error("name the script to run")
    sys.exit(launch(a.nranks, a.script, a.timeout))


if __name__ == "__main__":
    main()
