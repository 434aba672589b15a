from estrom_cli.main import main

raise SystemExit(main())
