from lakehouse_cli.main import main

raise SystemExit(main())
