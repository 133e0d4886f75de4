import sys

from tfmodelsec.cli import main

sys.exit(main())
