"""A fake Telegram Bot API server: what python-telegram-bot talks to in the e2e tests.

    async with TelegramFake(token="123:abc") as tg:
        config.telegram.api_base_url = f"{tg.url}/bot"; api_file_url = f"{tg.url}/file/bot"
        alice = tg.user(1001, language_code="en")
        alice.says("/start")                       # queued for getUpdates (or POSTed to a webhook)
        await tg.wait_for("sendMessage", chat_id=1001)
        tg.script_next("sendMessage", tg.retry_after(1))   # the next sendMessage gets a 429
        tg.block(1001)                             # 403 "bot was blocked by the user" from now on

`POST|GET /bot{token}/{method}` takes JSON, urlencoded or multipart bodies (PTB sends files as
multipart, other parameters urlencoded with JSON-encoded objects), and answers like Telegram:
`{"ok": true, "result": …}`, or `{"ok": false, "error_code": …, "description": …}` with
`parameters.retry_after` for a 429. It checks what Telegram checks where a test could trip on
it: the token (401), text and caption lengths, callback data ≤ 64 bytes, command names, Stars
invoices (XTR, empty provider token, one price, payload 1-128 bytes), upload sizes
(`upload_limit`), "message is not modified". `GET /file/bot{token}/{path}` serves the files
that test users "sent" (registered bytes), through `getFile`.

getUpdates long-polls a queue (its `timeout` honoured, `offset` confirming what came before);
after `setWebhook` the fake instead POSTs each queued update to the webhook URL with the
`X-Telegram-Bot-Api-Secret-Token` header and retries non-2xx answers, and getUpdates answers
409 as Telegram does. Every API call is recorded (`calls`: method, parameters, uploaded file
sizes, arrival time on the loop's clock).

Stars: `checks_out` queues a pre_checkout_query, `pays` a successful_payment message and
remembers the charge as that user's (`charges`). refundStarPayment refuses what Telegram
refuses: an empty charge id, a charge it knows as another user's (CHARGE_NOT_FOUND), a charge
refunded before (CHARGE_ALREADY_REFUNDED); a charge it never saw is accepted (adapter tests
refund without a payment). `refunds` lists the (user id, charge id) pairs it refunded.
Subscriptions: createInvoiceLink checks what Telegram checks for a Stars subscription
(`subscription_period` 2592000 only, at most 10000 Stars) and records `invoice_links`;
`pays(..., subscription_expires=…)` is one paid period; editUserStarSubscription refuses a
charge of another user and records `subscription_edits`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientSession, web
from multidict import MultiDictProxy

from ._server import FakeServer, Reply

__all__ = ["Call", "FakeUser", "Reply", "TelegramFake"]

_JSON_PARAMS = {"reply_markup", "prices", "commands", "allowed_updates", "scope", "media",
                "entities", "caption_entities", "link_preview_options", "reply_parameters"}
_SENDS = {"sendMessage", "sendPhoto", "sendVideo", "sendDocument", "sendInvoice",
          "editMessageText", "sendMediaGroup"}
_COMMAND = re.compile(r"[a-z0-9_]{1,32}")
MB = 1024 * 1024


@dataclass(frozen=True)
class Call:
    method: str
    params: dict[str, Any]
    files: dict[str, int]  # parameter → uploaded bytes
    at: float  # the event loop's clock when it arrived

    @property
    def chat_id(self) -> int | None:
        value = self.params.get("chat_id")
        return int(value) if value is not None else None

    def buttons(self) -> list[tuple[str, str]]:
        """(label, callback data or url) of the inline keyboard, row by row."""
        markup = self.params.get("reply_markup") or {}
        return [(b["text"], b.get("callback_data") or b.get("url", ""))
                for row in markup.get("inline_keyboard", []) for b in row]


@dataclass
class FakeUser:
    """A Telegram user in a private chat with the bot; each action queues one update."""

    fake: TelegramFake
    id: int
    first_name: str = "Test"
    language_code: str | None = "en"

    def _from(self) -> dict[str, Any]:
        user: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.language_code:
            user["language_code"] = self.language_code
        return user

    def _message(self, **fields: Any) -> dict[str, Any]:
        return {"message_id": self.fake.next_message_id(self.id), "date": int(time.time()),
                "chat": {"id": self.id, "type": "private", "first_name": self.first_name},
                "from": self._from(), **fields}

    def says(self, text: str) -> dict[str, Any]:
        return self.fake.push(self.text_update(text))

    def text_update(self, text: str) -> dict[str, Any]:
        """The update `says` queues, without queueing it or its update_id (to POST it
        to a webhook yourself)."""
        fields: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            fields["entities"] = [{"type": "bot_command", "offset": 0,
                                   "length": len(text.split()[0])}]
        return {"message": self._message(**fields)}

    def sends_photo(self, data: bytes, caption: str = "", *, album: str | None = None,
                    as_document: bool = False, declared_size: int | None = None,
                    ) -> dict[str, Any]:
        """A photo (two sizes, the large one being `data`), or an image sent as a file."""
        big = self.fake.add_file(data, "photos", declared_size)
        fields: dict[str, Any] = {}
        if as_document:
            fields["document"] = {**big, "file_name": "photo.jpg", "mime_type": "image/jpeg"}
        else:
            small = self.fake.add_file(data[:64], "photos")
            fields["photo"] = [{**small, "width": 90, "height": 67},
                               {**big, "width": 1280, "height": 960}]
        if caption:
            fields["caption"] = caption
        if album:
            fields["media_group_id"] = album
        return self.fake.push({"message": self._message(**fields)})

    def sends_album(self, photos: list[bytes], caption: str = "") -> list[dict[str, Any]]:
        group = f"album{next(self.fake.ids)}"
        return [self.sends_photo(p, caption if i == 0 else "", album=group)
                for i, p in enumerate(photos)]

    def presses(self, data: str, *, message_id: int | None = None) -> dict[str, Any]:
        """Presses a button of the bot's message (by default the last one sent to this chat)."""
        mid = message_id or self.fake.last_message_id(self.id)
        message = {"message_id": mid, "date": int(time.time()),
                   "chat": {"id": self.id, "type": "private", "first_name": self.first_name},
                   "from": self.fake.me, "text": "…"}
        return self.fake.push({"callback_query": {
            "id": str(next(self.fake.ids)), "from": self._from(), "chat_instance": "ci",
            "data": data, "message": message}})

    def checks_out(self, payload: str, total: int, currency: str = "XTR") -> dict[str, Any]:
        return self.fake.push({"pre_checkout_query": {
            "id": str(next(self.fake.ids)), "from": self._from(), "currency": currency,
            "total_amount": total, "invoice_payload": payload}})

    def pays(self, payload: str, total: int, charge_id: str, *,
             subscription_expires: int | None = None, first: bool = False,
             ) -> dict[str, Any]:
        """A successful_payment; with `subscription_expires` (Unix seconds) one period of a
        Stars subscription (`is_recurring`, `is_first_recurring` for the first)."""
        self.fake.charges[charge_id] = self.id
        paid: dict[str, Any] = {
            "currency": "XTR", "total_amount": total, "invoice_payload": payload,
            "telegram_payment_charge_id": charge_id, "provider_payment_charge_id": ""}
        if subscription_expires is not None:
            paid |= {"subscription_expiration_date": subscription_expires,
                     "is_recurring": True, "is_first_recurring": first}
        return self.fake.push({"message": self._message(successful_payment=paid)})


@dataclass
class _Webhook:
    url: str
    secret: str | None
    statuses: list[int] = field(default_factory=list)


class TelegramFake(FakeServer):
    def __init__(self, *, token: str = "123456:TEST-token_abc", bot_id: int = 123456,
                 username: str = "videofly_test_bot", upload_limit: int = 50 * MB) -> None:
        super().__init__()
        self.token = token
        self.me = {"id": bot_id, "is_bot": True, "first_name": "VideoFly",
                   "username": username, "can_join_groups": False,
                   "can_read_all_group_messages": False, "supports_inline_queries": False}
        self.upload_limit = upload_limit
        self.ids = itertools.count(1)
        self.calls: list[Call] = []
        self.commands: dict[str, list[dict[str, str]]] = {}  # language ("" default) → menu
        self.blocked: set[int] = set()
        self.files: dict[str, tuple[bytes, str]] = {}  # file_id → (bytes, file_path)
        self.messages: dict[tuple[int, int], dict[str, Any]] = {}  # (chat, id) → content
        self.webhook: _Webhook | None = None
        self.charges: dict[str, int] = {}  # telegram_payment_charge_id → the payer (`pays`)
        self.refunds: list[tuple[int, str]] = []  # (user id, charge id) refunded, in order
        # createInvoiceLink calls (their parameters and the link given); editUserStarSubscription
        # calls as (user id, charge id, is_canceled).
        self.invoice_links: list[dict[str, Any]] = []
        self.subscription_edits: list[tuple[int, str, bool]] = []
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._last_sent: dict[int, int] = {}
        self._tick = asyncio.Event()  # set and replaced on every change (see `_until`)
        self._pusher: asyncio.Task[None] | None = None

    # --- running ------------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        return [web.route("*", "/bot{token}/{method}", self._api),
                web.get("/file/bot{token}/{path:.+}", self._file)]

    async def start(self, port: int = 0) -> None:
        """As FakeServer.start, with room for uploads (aiohttp allows 1 MB by default)."""
        app = web.Application(client_max_size=self.upload_limit + MB)
        app.add_routes(self.routes())
        runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.1,
                               access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        self._runner = runner
        self.port = runner.addresses[0][1]

    async def stop(self) -> None:
        if self._pusher is not None:
            self._pusher.cancel()
            await asyncio.gather(self._pusher, return_exceptions=True)
            self._pusher = None
        await super().stop()

    @property
    def api_base_url(self) -> str:
        return f"{self.url}/bot"

    @property
    def api_file_url(self) -> str:
        return f"{self.url}/file/bot"

    # --- what tests use -----------------------------------------------------------------------

    def user(self, user_id: int, *, language_code: str | None = "en",
             first_name: str = "Test") -> FakeUser:
        return FakeUser(self, user_id, first_name, language_code)

    def block(self, user_id: int) -> None:
        self.blocked.add(user_id)

    @staticmethod
    def error(code: int, description: str, **parameters: Any) -> Reply:
        body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
        if parameters:
            body["parameters"] = parameters
        return Reply(status=code, json=body)

    @classmethod
    def retry_after(cls, seconds: int) -> Reply:
        return cls.error(429, f"Too Many Requests: retry after {seconds}", retry_after=seconds)

    def push(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queues an update (given without update_id) and returns it, numbered."""
        update = {"update_id": next(self._update_ids), **update}
        self._updates.append(update)
        self._poke()
        return update

    def add_file(self, data: bytes, folder: str, declared_size: int | None = None,
                 ) -> dict[str, Any]:
        n = next(self.ids)
        file_id, path = f"file-{n}", f"{folder}/file_{n}.jpg"
        self.files[file_id] = (data, path)
        return {"file_id": file_id, "file_unique_id": f"u{n}",
                "file_size": len(data) if declared_size is None else declared_size}

    def next_message_id(self, chat: int) -> int:
        return next(self._message_ids.setdefault(chat, itertools.count(1)))

    def last_message_id(self, chat: int) -> int:
        return self._last_sent[chat]

    def of(self, method: str, chat_id: int | None = None) -> list[Call]:
        return [c for c in self.calls if c.method == method
                and (chat_id is None or c.chat_id == chat_id)]

    def sent_to(self, chat_id: int) -> list[Call]:
        """What the bot sent or edited in this chat, in order."""
        return [c for c in self.calls if c.method in _SENDS and c.chat_id == chat_id]

    def texts(self, chat_id: int) -> list[str]:
        """Every text and caption the bot sent to this chat (edits included), in order."""
        return [str(c.params.get("text") or c.params.get("caption") or c.params.get("title"))
                for c in self.sent_to(chat_id)]

    async def wait_for(self, method: str, *, chat_id: int | None = None, count: int = 1,
                       within: float = 15.0, after: int = 0,
                       where: Any = None) -> list[Call]:
        """Waits (at most `within` seconds) until `count` calls of `method` (to `chat_id`,
        matching `where`, among the calls after index `after`) have arrived; returns them."""

        def found() -> list[Call]:
            return [c for c in self.calls[after:] if c.method == method
                    and (chat_id is None or c.chat_id == chat_id)
                    and (where is None or where(c))]

        async with asyncio.timeout(within):
            await self._until(lambda: len(found()) >= count)
        return found()

    # --- the API ------------------------------------------------------------------------------

    def _poke(self) -> None:
        self._tick.set()
        self._tick = asyncio.Event()

    async def _until(self, predicate: Any) -> None:
        """Returns once `predicate()` holds, re-checking after every change."""
        while True:
            tick = self._tick
            if predicate():
                return
            await tick.wait()

    async def _params(self, request: web.Request) -> tuple[dict[str, Any], dict[str, int]]:
        params: dict[str, Any] = {}
        files: dict[str, bytes] = {}
        if request.content_type == "application/json":
            body = await request.read()
            params = json.loads(body) if body else {}
        elif request.method == "POST":
            form: MultiDictProxy[Any] = await request.post()
            for name, value in form.items():
                if isinstance(value, web.FileField):
                    files[name] = value.file.read()
                else:
                    params[name] = value
        params.update({k: v for k, v in request.query.items() if k not in params})
        for name in _JSON_PARAMS & params.keys():
            if isinstance(params[name], str):
                params[name] = json.loads(params[name])
        sizes = {}
        for name, value in list(params.items()):  # "attach://<name>" points at a file part
            if isinstance(value, str) and value.startswith("attach://"):
                sizes[name] = len(files.get(value.removeprefix("attach://"), b""))
        for name, data in files.items():
            if name in params or not any(v == f"attach://{name}" for v in params.values()):
                sizes[name] = len(data)
        return params, sizes

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401,
                                      "description": "Unauthorized"}, status=401)
        params, sizes = await self._params(request)
        self.calls.append(Call(method, params, sizes, asyncio.get_running_loop().time()))
        self._poke()
        scripted = await self.scripted(method, request)
        if scripted is not None:
            return scripted
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            return self._refuse(404, "Not Found")
        chat = params.get("chat_id")
        if method in _SENDS and chat is not None and int(chat) in self.blocked:
            return self._refuse(403, "Forbidden: bot was blocked by the user")
        try:
            result = await handler(params, sizes)
        except _Refusal as refusal:
            return self._refuse(refusal.code, refusal.description)
        return web.json_response({"ok": True, "result": result})

    @staticmethod
    def _refuse(code: int, description: str) -> web.Response:
        return web.json_response({"ok": False, "error_code": code,
                                  "description": description}, status=code)

    async def _file(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        path = request.match_info["path"]
        for data, file_path in self.files.values():
            if file_path == path:
                return web.Response(body=data, content_type="image/jpeg")
        return web.Response(status=404)

    # --- methods --------------------------------------------------------------------------

    async def _m_getMe(self, p: dict[str, Any], f: dict[str, int]) -> Any:
        return self.me

    async def _m_getUpdates(self, p: dict[str, Any], f: dict[str, int]) -> Any:
        if self.webhook is not None:
            raise _Refusal(409, "Conflict: can't use getUpdates method while webhook is "
                                "active; use deleteWebhook to delete the webhook first")
        offset, limit = int(p.get("offset", 0)), int(p.get("limit", 100))
        if offset:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        try:
            async with asyncio.timeout(float(p.get("timeout", 0))):
                await self._until(lambda: bool(self._updates))
        except TimeoutError:
            pass
        return self._updates[:limit]

    async def _m_deleteWebhook(self, p: dict[str, Any], f: dict[str, int]) -> Any:
        self.webhook = None
        self._poke()
        if str(p.get("drop_pending_updates", "")).lower() == "true":
            self._updates.clear()
        return True

    async def _m_setWebhook(self, p: dict[str, Any], f: dict[str, int]) -> Any:
        secret = p.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise _Refusal(400, "Bad Request: secret token contains unallowed characters")
        self.webhook = _Webhook(p["url"], secret)
        if self._pusher is None or self._pusher.done():
            self._pusher = asyncio.get_running_loop().create_task(self._push_loop())
        return True

    async def _push_loop(self) -> None:
        """Delivers queued updates to the webhook, one at a time, retrying non-2xx answers."""
        async with ClientSession() as session:
            while self.webhook is not None:
                await self._until(lambda: bool(self._updates) or self.webhook is None)
                hook = self.webhook
                if hook is None:
                    return
                update = self._updates[0]
                headers = {"Content-Type": "application/json"}
                if hook.secret:
                    headers["X-Telegram-Bot-Api-Secret-Token"] = hook.secret
                try:
                    async with session.post(hook.url, data=json.dumps(update),
                                            headers=headers) as resp:
                        status = resp.status
                except OSError:
                    status = 0
                hook.statuses.append(status)
                if 200 <= status < 300:
                    self._updates.pop(0)
                else:
                    await asyncio.sleep(0.2)

    def _text_checks(self, p: dict[str, Any], key: str, limit: int) -> str:
        text = str(p.get(key) or "")
        if key == "text" and not text.strip():
            raise _Refusal(400, "Bad Request: message text is empty")
        if len(text) > limit:
            raise _Refusal(400, f"Bad Request: message {'caption ' if key != 'text' else ''}"
                                "is too long")
        for row in (p.get("reply_markup") or {}).get("inline_keyboard", []):
            for button in row:
                if len(button.get("callback_data", "").encode()) > 64:
                    raise _Refusal(400, "Bad Request: BUTTON_DATA_INVALID")
        return text

    def _sent(self, p: dict[str, Any], **content: Any) -> dict[str, Any]:
        chat = int(p["chat_id"])
        mid = self.next_message_id(chat)
        self._last_sent[chat] = mid
        markup = p.get("reply_markup")
        self.messages[(chat, mid)] = {"text": content.get("text"), "markup": markup}
        message = {"message_id": mid, "date": int(time.time()), "from": self.me,
                   "chat": {"id": chat, "type": "private", "first_name": "Test"}, **content}
        if markup:
            message["reply_markup"] = markup
        return message

    def _upload(self, f: dict[str, int], name: str, limit: int) -> dict[str, Any]:
        size = f.get(name, 0)
        if size > limit:
            raise _Refusal(413, "Request Entity Too Large")
        n = next(self.ids)
        return {"file_id": f"sent-{n}", "file_unique_id": f"s{n}", "file_size": size}

    async def _m_sendMessage(self, p: dict[str, Any], f: dict[str, int]) -> Any:
        return self._sent(p, text=self._text_checks(p, "text", 4096))

    async def _m_editMessageText(self, p: dict[str, Any], f: dict[str, int]) -> Any:
        key = (int(p["chat_id"]), int(p["message_id"]))
        text = self._text_checks(p, "text", 4096)
        old = self.messages.get(key)
        if old is None:
            raise _Refusal(400, "Bad Request: message to edit not found")
        markup = p.get("reply_markup")
        if old == {"text": text, "markup": markup}:
            raise _Refusal(400, "Bad Request: message is not modified: specified new message "
                                "content and reply markup are exactly the same as a current "
                                "content and reply markup of the message")
        self.messages[key] = {"text": text, "markup": markup}
        return {"message_id": key[1], "date": int(time.time()), "from": self.me,
                "chat": {"id": key[0], "type": "private"}, "text": text}

    async def _m_sendPhoto(self, p: dict[str, Any], f: dict[str, int]) -> Any:
        caption = self._text_checks(p, "caption", 1024)
        photo = self._upload(f, "photo", 10 * MB)
        return self._sent(p, photo=[{**photo, "width": 320, "height": 240}],
                          caption=caption or None)

    async def _m_sendVideo(self, p: dict[str, Any], f: dict[str, int]) -> Any:
        caption = self._text_checks(p, "caption", 1024)
        if f.get("thumbnail", 0) > 200 * 1024:
            raise _Refusal(400, "Bad Request: thumbnail is too big")
        video = self._upload(f, "video", self.upload_limit)
        return self._sent(p, video={**video, "width": 640, "height": 360, "duration": 4},
                          caption=caption or None)

    async def _m_sendInvoice(self, p: dict[str, Any], f: dict[str, int]) -> Any:
        prices = p.get("prices") or []
        payload = str(p.get("payload", ""))
        if p.get("currency") != "XTR" or p.get("provider_token") or len(prices) != 1:
            raise _Refusal(400, "Bad Request: CURRENCY_INVALID")
        if not 1 <= len(payload.encode()) <= 128:
            raise _Refusal(400, "Bad Request: INVOICE_PAYLOAD_INVALID")
        return self._sent(p, invoice={"title": p["title"], "description": p["description"],
                                      "start_parameter": "", "currency": "XTR",
                                      "total_amount": int(prices[0]["amount"])})

    async def _m_getFile(self, p: dict[str, Any], f: dict[str, int]) -> Any:
        found = self.files.get(str(p.get("file_id")))
        if found is None:
            raise _Refusal(400, "Bad Request: invalid file_id")
        data, path = found
        if len(data) > 20 * MB:
            raise _Refusal(400, "Bad Request: file is too big")
        return {"file_id": p["file_id"], "file_unique_id": "u", "file_size": len(data),
                "file_path": path}

    async def _m_answerCallbackQuery(self, p: dict[str, Any], f: dict[str, int]) -> Any:
        return True

    async def _m_answerPreCheckoutQuery(self, p: dict[str, Any], f: dict[str, int]) -> Any:
        ok = str(p.get("ok")).lower() == "true"
        if not ok and not p.get("error_message"):
            raise _Refusal(400, "Bad Request: ERROR_MESSAGE_EMPTY")
        return True

    async def _m_createInvoiceLink(self, p: dict[str, Any], f: dict[str, int]) -> Any:
        prices = p.get("prices") or []
        payload = str(p.get("payload", ""))
        if p.get("currency") != "XTR" or p.get("provider_token") or len(prices) != 1:
            raise _Refusal(400, "Bad Request: CURRENCY_INVALID")
        if not 1 <= len(payload.encode()) <= 128:
            raise _Refusal(400, "Bad Request: INVOICE_PAYLOAD_INVALID")
        period = p.get("subscription_period")
        if period is not None and int(period) != 2_592_000:
            raise _Refusal(400, "Bad Request: SUBSCRIPTION_PERIOD_INVALID")
        if period is not None and int(prices[0]["amount"]) > 10_000:
            raise _Refusal(400, "Bad Request: SUBSCRIPTION_PRICE_INVALID")
        link = f"https://t.me/$fake_invoice_{next(self.ids)}"
        self.invoice_links.append({**p, "link": link})
        return link

    async def _m_editUserStarSubscription(self, p: dict[str, Any], f: dict[str, int]) -> Any:
        charge = str(p.get("telegram_payment_charge_id") or "")
        user = int(p.get("user_id") or 0)
        if not charge or self.charges.get(charge, user) != user:
            raise _Refusal(400, "Bad Request: CHARGE_NOT_FOUND")
        canceled = str(p.get("is_canceled")).lower() == "true"
        self.subscription_edits.append((user, charge, canceled))
        return True

    async def _m_refundStarPayment(self, p: dict[str, Any], f: dict[str, int]) -> Any:
        charge = str(p.get("telegram_payment_charge_id") or "")
        if not charge:
            raise _Refusal(400, "Bad Request: CHARGE_ID_EMPTY")
        user = int(p.get("user_id") or 0)
        payer = self.charges.get(charge)
        if payer is not None and payer != user:
            raise _Refusal(400, "Bad Request: CHARGE_NOT_FOUND")
        if any(refunded == charge for _, refunded in self.refunds):
            raise _Refusal(400, "Bad Request: CHARGE_ALREADY_REFUNDED")
        self.refunds.append((user, charge))
        return True

    async def _m_setMyCommands(self, p: dict[str, Any], f: dict[str, int]) -> Any:
        commands = p.get("commands") or []
        for c in commands:
            if not _COMMAND.fullmatch(c.get("command", "")):
                raise _Refusal(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(c.get("description", "")) <= 256:
                raise _Refusal(400, "Bad Request: command description is invalid")
        self.commands[str(p.get("language_code") or "")] = commands
        return True

    async def _m_getMyCommands(self, p: dict[str, Any], f: dict[str, int]) -> Any:
        return self.commands.get(str(p.get("language_code") or ""), [])


class _Refusal(Exception):
    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code, self.description = code, description
