from chattune.cli.main import main

main()
