from autosys.cli.main import main

main()
