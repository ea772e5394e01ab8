from meshsite.cli import main

main()
