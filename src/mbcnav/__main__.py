from mbcnav.cli import main

main()
