"""``python -m cogsim`` runs the command line."""
from cogsim.cli import main

raise SystemExit(main())
