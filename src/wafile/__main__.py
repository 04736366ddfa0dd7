from wafile.cli import main

main()
