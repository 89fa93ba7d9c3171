from minae.explore.cli import main

main(prog="python -m minae.explore")
