import sys

from perturbkit.cli import main

sys.exit(main())
