"""The one aiohttp server: callbacks, payment webhooks, Telegram, WeChat, media, health."""
