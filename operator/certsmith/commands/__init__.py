"""The command line's subcommands for people: status, renew, inspect. Each takes the API client and
its parsed arguments, prints, and returns an exit code (see `ExitCode`)."""
