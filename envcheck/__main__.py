import sys

from envcheck import interrupt

interrupt.when_run(__name__, "envcheck")

from envcheck.cli import main

sys.exit(main())
