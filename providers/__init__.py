"""Clients of the AI providers (kie, evolink, image try-on, demo) behind one Protocol."""
