from jobbroker.cli import main

main()
