"""``python -m gpubench``."""

from gpubench.cli import main

raise SystemExit(main())
