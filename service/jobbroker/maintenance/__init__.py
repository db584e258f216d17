"""Background loops every replica runs; they coordinate only through the database."""
