"""Every test runs torch on one thread, and so do the subprocesses tests start (they inherit OMP_NUM_THREADS).

The models under test are tiny: a second thread only adds synchronisation, and on a busy 2-core
machine two-thread torch runs such models many times slower than one thread.
"""
import os

import torch

os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1)
