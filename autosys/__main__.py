from autosys.cli import main

main()
