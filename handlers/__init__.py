"""Channel-neutral conversations and commands; state kept in the database."""
