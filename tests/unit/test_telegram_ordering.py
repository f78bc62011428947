"""Which updates wait for the same user's earlier ones (`user_key`)."""

from __future__ import annotations

from telegram import Update

from bot._telegram_ptb import user_key

USER = {"id": 42, "is_bot": False, "first_name": "Ann"}


def test_messages_are_ordered_per_user_but_pre_checkout_queries_jump_the_queue() -> None:
    message = Update.de_json({"update_id": 1, "message": {
        "message_id": 7, "date": 0, "chat": {"id": 42, "type": "private"}, "from": USER,
        "text": "/balance"}}, None)
    query = Update.de_json({"update_id": 2, "pre_checkout_query": {
        "id": "q1", "from": USER, "currency": "XTR", "total_amount": 250,
        "invoice_payload": "vf:o1:starter"}}, None)
    assert user_key(message) == 42
    assert user_key(query) is None  # answered within 10 s, whatever the user's chat is doing
    assert user_key(object()) is None
