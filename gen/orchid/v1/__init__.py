"""Generated from proto/orchid/v1: do not edit (run `make proto`)."""
