from lprcausal.cli import main

main()
