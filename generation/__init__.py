"""Generation jobs: hold → submit → callback/poll → store → settle or release."""
