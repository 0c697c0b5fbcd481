from tests.mutants.run import main

raise SystemExit(main())
