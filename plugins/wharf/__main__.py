from wharf.cli.main import main

raise SystemExit(main())
