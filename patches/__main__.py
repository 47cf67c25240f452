import sys

from envcheck import interrupt

interrupt.when_run(__name__, "patches")

from patches.cli import main

sys.exit(main())
