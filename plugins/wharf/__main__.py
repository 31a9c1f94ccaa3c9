from wharf.cli import main

raise SystemExit(main())
