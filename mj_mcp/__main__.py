from mj_mcp.cli import main

raise SystemExit(main())
