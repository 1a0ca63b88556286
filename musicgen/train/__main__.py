"""`python -m musicgen.train` and `torchrun -m musicgen.train`: the same as `musicgen-train`."""
from .loop import main

main()
