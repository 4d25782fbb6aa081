"""Runs a test function on several ranks (forked processes) and reports
the first failing rank's traceback."""
import multiprocessing as mp
import os
import queue
import socket
import traceback

CTX = mp.get_context("fork")


def _child(rank, n, fn, args, idq, out, env):
    try:
        os.environ.update(env)
        os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank))
        if idq is not None:  # a ppuccl unique id made by rank 0
            import ppuccl
            if rank == 0:
                uid = ppuccl.get_unique_id()
                for _ in range(n - 1):
                    idq.put(uid)
            else:
                uid = idq.get(timeout=30)
            fn(rank, n, uid, *args)
        else:
            fn(rank, n, *args)
        out.put((rank, None))
    except BaseException:  # report everything, including assertion failures
        out.put((rank, traceback.format_exc()))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(n, fn, *args, uid=True, timeout=60):
    """fn(rank, n, uid, *args) on n ranks (uid=False: fn(rank, n, *args),
    with MASTER_ADDR/MASTER_PORT/WORLD_SIZE/RANK set for torch env://)."""
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "WORLD_SIZE": str(n)}
    idq = CTX.Queue() if uid else None
    out = CTX.Queue()
    procs = [CTX.Process(target=_child, args=(r, n, fn, args, idq, out, env)) for r in range(n)]
    for p in procs:
        p.start()
    errors, done = {}, 0
    try:
        while done < n:
            rank, err = out.get(timeout=timeout)
            done += 1
            if err:
                errors[rank] = err
                break  # the others may wait forever on this rank
    except queue.Empty:
        errors[-1] = f"ranks did not finish within {timeout} s"
    finally:
        for p in procs:
            p.join(timeout=5 if not errors else 0.5)
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join()
    if errors:
        rank = min(errors)
        raise AssertionError(f"rank {rank} of {n} failed:\n{errors[rank]}")
