"""`python -m codec.train` and `torchrun -m codec.train`: the same as `codec-train`."""
from .loop import main

main()
