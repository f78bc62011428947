"""The base every other package stands on: configuration, the database engine and schema
metadata, and migrations. No channel, HTTP or money rules here."""
