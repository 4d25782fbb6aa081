"""Under mpirun: Communicator.from_env and init_process_group("ppu")."""
import os
import shutil
import subprocess
import sys
import unittest

from _ranks import free_port

HERE = os.path.dirname(os.path.abspath(__file__))


@unittest.skipUnless(shutil.which("mpirun"), "mpirun is not installed")
class Mpirun(unittest.TestCase):
    def test_two_ranks(self):
        env = dict(os.environ, MASTER_PORT=str(free_port()))
        cmd = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "2",
               "-x", "MASTER_PORT", "-x", "PPUCCL_LIB", sys.executable,
               os.path.join(HERE, "mpi_rank.py")]
        if "PPUCCL_LIB" not in env:
            del cmd[cmd.index("PPUCCL_LIB") - 1:cmd.index("PPUCCL_LIB") + 1]
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr[-3000:])
        self.assertEqual(p.stdout.count(": ok"), 2, p.stdout)


if __name__ == "__main__":
    unittest.main()
