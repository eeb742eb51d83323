"""`python -m kimtrain ...` (and `torchrun ... -m kimtrain fit ...`): the kimtrain command line."""
import sys

from .cli import main

sys.exit(main())
