from lollms_server.cli import main

main()
