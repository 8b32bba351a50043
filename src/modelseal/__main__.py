from modelseal.cli import main

main()
