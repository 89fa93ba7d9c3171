from minae.explore.cli import main

main()
