"""`python -m rubiks_service.cli ...`: how a job on the cluster runs the CLI of this very interpreter."""
import sys

from . import main

sys.exit(main())
