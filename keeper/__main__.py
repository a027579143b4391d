import sys

from keeper.cli import main

sys.exit(main())
