from portwarden.cli import main

raise SystemExit(main())
