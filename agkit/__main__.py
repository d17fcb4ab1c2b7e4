from agkit.cli.app import main

main()
