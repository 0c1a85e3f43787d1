"""Generated from proto/orchid: do not edit (run `make proto`)."""
