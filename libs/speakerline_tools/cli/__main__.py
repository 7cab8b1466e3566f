"""`python -m speakerline_tools.cli ...` is `speakerline ...`."""

from speakerline_tools.cli import main

raise SystemExit(main())
