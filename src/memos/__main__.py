from memos.cli.main import main

main()
