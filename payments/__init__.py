"""Top-ups: Stripe Checkout, Telegram Stars and Creem; events become wallet grants."""
