"""The outbox dispatcher on a real database (SQLite, or PostgreSQL when named), with a
recording channel and a small stand-in for the handlers' rendering: order, exactly once with two
dispatchers, lease expiry after a crash, RetryLater, Blocked, backoff, status edits."""

from __future__ import annotations

import asyncio
import random
from collections import deque
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import _dispatch_sql as sql
from bot.channel import Blocked, ChannelError, Held, RetryLater, Undeliverable
from bot.dispatcher import Dispatcher, DispatchPolicy
from core.db import new_id, read, write
from core.outbox import enqueue, outbox
from generation.tables import jobs
from handlers.tables import chats, job_messages
from handlers.types import Outbound, Text, capabilities_of
from tests.factories import FakeClock, TestDatabase
from wallet import Wallet

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"  # a bot token's shape, not a real one


class Renderer:
    """Renders `say` rows as one Text, `two` as two, `track` as a status message; unknown kinds
    as nothing (as the real handlers do); `boom` raises."""

    def __init__(self) -> None:
        self.status: dict[int, tuple[str, Text] | None] = {}
        self.remembered: list[tuple[int, str, str, str]] = []

    async def notification(self, user_id: int, kind: str,
                           payload: dict[str, Any]) -> list[Outbound]:
        if kind == "boom":
            raise RuntimeError("renderer bug")
        if kind == "say":
            return [Text(text=payload["text"])]
        if kind == "two":
            return [Text(text=payload["text"] + "/1"), Text(text=payload["text"] + "/2")]
        if kind == "track":
            return [Text(text="queued", track_job=payload["job_id"])]
        return []

    async def job_status(self, job_id: int) -> tuple[str, Text] | None:
        return self.status.get(job_id)

    async def remember_status(self, job_id: int, *, channel: str, address: str,
                              message_id: str) -> None:
        self.remembered.append((job_id, channel, address, message_id))


class Recorder:
    """A channel that records what it sends; `fail` scripts the next calls' exceptions."""

    def __init__(self, name: str = "telegram", log: list[tuple[str, str]] | None = None) -> None:
        self.name = name
        self.capabilities = capabilities_of(name)
        self.log = log if log is not None else []  # (address, text), shared across channels
        self.fail: deque[Exception | None] = deque()
        self.calls = 0
        self.edits: list[tuple[str, str, str]] = []

    async def send(self, address: str, message: Outbound) -> str | None:
        self.calls += 1
        await asyncio.sleep(0)  # let a concurrent dispatcher run in between
        if self.fail and (exc := self.fail.popleft()) is not None:
            raise exc
        assert isinstance(message, Text)
        self.log.append((address, message.text))
        return str(len(self.log))

    async def edit(self, address: str, message_id: str, message: Text) -> None:
        self.calls += 1
        if self.fail and (exc := self.fail.popleft()) is not None:
            raise exc
        self.edits.append((address, message_id, message.text))


def dispatcher(engine: AsyncEngine, channel: Recorder, clock: FakeClock,
               renderer: Renderer | None = None, **policy: Any) -> Dispatcher:
    return Dispatcher(engine=engine, handlers=renderer or Renderer(),
                      channels={channel.name: channel}, clock=clock,
                      policy=DispatchPolicy(**policy), rng=random.Random(7))


async def queue(engine: AsyncEngine, clock: FakeClock, user_id: int, kind: str = "say",
                **payload: Any) -> None:
    async with write(engine) as conn:
        await enqueue(conn, user_id=user_id, kind=kind, payload=payload, now=clock())


async def rows(engine: AsyncEngine, user_id: int | None = None) -> list[Any]:
    query = select(outbox).order_by(outbox.c.id)
    if user_id is not None:
        query = query.where(outbox.c.user_id == user_id)
    async with read(engine) as conn:
        return list((await conn.execute(query)).all())


async def test_delivers_each_users_rows_in_order(engine: AsyncEngine, wallet: Wallet,
                                                 clock: FakeClock) -> None:
    ann = await wallet.open_account("telegram", "100")
    bob = await wallet.open_account("telegram", "200")
    for i in range(4):
        await queue(engine, clock, ann, text=f"a{i}")
        await queue(engine, clock, bob, text=f"b{i}")
    channel = Recorder()
    assert await dispatcher(engine, channel, clock).run_once() == 8
    assert [t for a, t in channel.log if a == "100"] == ["a0", "a1", "a2", "a3"]
    assert [t for a, t in channel.log if a == "200"] == ["b0", "b1", "b2", "b3"]
    assert {(r.state, r.sent_at) for r in await rows(engine)} == {("sent", clock())}
    assert await dispatcher(engine, channel, clock).run_once() == 0
    assert len(channel.log) == 8


async def test_two_dispatchers_send_every_row_exactly_once_and_in_order(
        database: TestDatabase, engine: AsyncEngine, wallet: Wallet, clock: FakeClock) -> None:
    users = [await wallet.open_account("telegram", str(1000 + u)) for u in range(12)]
    for i in range(8):
        for u in users:
            await queue(engine, clock, u, text=str(i))
    shared: list[tuple[str, str]] = []
    other = database.engine(pool_size=5, max_overflow=5)
    try:
        recorders = [Recorder(log=shared), Recorder(log=shared)]
        pair = [dispatcher(engine, recorders[0], clock, batch=10, concurrency=3),
                dispatcher(other, recorders[1], clock, batch=10, concurrency=3)]

        async def drain(d: Dispatcher) -> None:
            for _ in range(200):  # bounded; 96 rows at up to 10 a pass
                await d.run_once()
                # A row behind one the other dispatcher is sending waits a second.
                clock.advance(seconds=1)
                if all(r.state == "sent" for r in await rows(engine)):
                    return

        async with asyncio.timeout(60):
            await asyncio.gather(*(drain(d) for d in pair))
    finally:
        await other.dispose()
    assert len(shared) == 96
    assert min(r.calls for r in recorders) > 0  # both took part
    for u in range(12):
        assert [t for a, t in shared if a == str(1000 + u)] == [str(i) for i in range(8)]


async def test_a_row_left_sending_by_a_crash_is_sent_after_its_lease(
        engine: AsyncEngine, wallet: Wallet, clock: FakeClock) -> None:
    uid = await wallet.open_account("telegram", "300")
    await queue(engine, clock, uid, text="hello")
    lease = timedelta(minutes=10)
    # A dispatcher claims the row and dies before sending or marking it.
    held = await sql.claim(engine, channels=["telegram"], now=clock(), token=clock() + lease,
                           limit=10)
    assert [r.payload for r in held] == [{"text": "hello"}]
    channel = Recorder()
    survivor = dispatcher(engine, channel, clock, lease=lease)
    assert await survivor.run_once() == 0
    clock.advance(seconds=lease.total_seconds() - 1)
    assert await dispatcher(engine, channel, clock, lease=lease).run_once() == 0
    assert channel.log == []
    clock.advance(seconds=2)
    assert await dispatcher(engine, channel, clock, lease=lease).run_once() == 1
    assert channel.log == [("300", "hello")]
    [row] = await rows(engine)
    assert (row.state, row.attempts) == ("sent", 1)
    # The dead dispatcher's late mark changes nothing: its lease token is gone.
    assert not await sql.finish(engine, held[0], state="failed", now=clock())
    assert (await rows(engine))[0].state == "sent"


async def test_retry_later_is_honoured_for_the_whole_channel(
        engine: AsyncEngine, wallet: Wallet, clock: FakeClock) -> None:
    ann = await wallet.open_account("telegram", "100")
    bob = await wallet.open_account("telegram", "200")
    await queue(engine, clock, ann, text="a0")
    await queue(engine, clock, ann, text="a1")
    await queue(engine, clock, bob, text="b0")
    channel = Recorder()
    channel.fail.append(RetryLater(30))
    d = dispatcher(engine, channel, clock, concurrency=1)
    assert await d.run_once() == 1
    first = (await rows(engine))[0]
    assert (first.state, first.next_attempt_at, first.attempts) == (
        "pending", clock() + timedelta(seconds=30), 0)
    assert channel.log == []
    clock.advance(seconds=29)
    assert await d.run_once() == 0
    assert channel.calls == 1  # nothing tried on the channel before the time
    clock.advance(seconds=1)
    assert await d.run_once() == 3
    assert [t for a, t in channel.log if a == "100"] == ["a0", "a1"]
    assert ("200", "b0") in channel.log


async def test_a_blocked_user_gets_nothing_more_until_they_write_again(
        engine: AsyncEngine, wallet: Wallet, clock: FakeClock) -> None:
    ann = await wallet.open_account("telegram", "100")
    bob = await wallet.open_account("telegram", "200")
    for i in range(3):
        await queue(engine, clock, ann, text=f"a{i}")
    await queue(engine, clock, bob, text="b0")
    channel = Recorder()
    channel.fail.append(Blocked("Forbidden: bot was blocked by the user"))
    d = dispatcher(engine, channel, clock, concurrency=1)
    await d.run_once()
    assert [r.state for r in await rows(engine, ann)] == ["blocked", "pending", "pending"]
    assert channel.log == [("200", "b0")]
    async with read(engine) as conn:
        assert (await conn.execute(select(chats.c.blocked_at).where(
            chats.c.user_id == ann))).scalar() == clock()
    clock.advance(minutes=5)
    assert await d.run_once() == 0
    assert channel.calls == 2
    async with write(engine) as conn:  # the user writes again: the handlers clear it
        await conn.execute(update(chats).where(chats.c.user_id == ann).values(blocked_at=None))
    assert await d.run_once() == 2
    assert [t for a, t in channel.log if a == "100"] == ["a1", "a2"]


async def test_network_errors_back_off_then_fail_without_leaking_the_token(
        engine: AsyncEngine, wallet: Wallet, clock: FakeClock) -> None:
    uid = await wallet.open_account("telegram", "100")
    await queue(engine, clock, uid, text="x")
    await queue(engine, clock, uid, text="y")
    channel = Recorder()
    error = ChannelError(f"connect failed: https://api.telegram.org/bot{TOKEN}/sendMessage "
                         f"token {TOKEN}")
    channel.fail.extend([error] * 3)
    d = dispatcher(engine, channel, clock, max_attempts=3, backoff_base=10)
    waits = []
    for attempt in (1, 2):
        start = clock()
        await d.run_once()
        x, y = await rows(engine, uid)
        assert (x.state, x.attempts, y.state, y.attempts) == ("pending", attempt, "pending", 0)
        wait = (x.next_attempt_at - start).total_seconds()
        assert 10 * 2 ** (attempt - 1) * 0.5 <= wait <= 10 * 2 ** (attempt - 1)
        assert TOKEN not in x.last_error
        assert "telegram.org" not in x.last_error
        assert x.last_error.startswith("ChannelError")
        calls = channel.calls
        clock.advance(seconds=wait - 0.5)  # not yet due: nothing is tried
        await d.run_once()
        assert channel.calls == calls
        waits.append(wait)
        clock.advance(seconds=0.5)
    await d.run_once()  # the third attempt fails for good; y goes out behind it
    x, y = await rows(engine, uid)
    assert (x.state, x.attempts) == ("failed", 3)
    assert "gave up after 3 attempts" in x.last_error
    assert TOKEN not in x.last_error
    clock.advance(seconds=2)
    await d.run_once()
    assert (await rows(engine, uid))[1].state == "sent"
    assert channel.log == [("100", "y")]
    assert waits[1] > waits[0] / 2


async def test_undeliverable_fails_unknown_kinds_finish_and_render_errors_retry(
        engine: AsyncEngine, wallet: Wallet, clock: FakeClock) -> None:
    uid = await wallet.open_account("telegram", "100")
    await queue(engine, clock, uid, text="too big")
    await queue(engine, clock, uid, kind="no.such.kind", job_id=1)
    await queue(engine, clock, uid, kind="boom")
    channel = Recorder()
    channel.fail.append(Undeliverable("Bad Request: file too big"))
    await dispatcher(engine, channel, clock).run_once()
    bad, unknown, boom = await rows(engine, uid)
    assert (bad.state, bad.last_error) == ("failed", "Undeliverable: Bad Request: file too big")
    assert (unknown.state, unknown.sent_at) == ("sent", clock())  # nothing to say: done
    assert (boom.state, boom.attempts) == ("pending", 1)
    assert boom.last_error == "RuntimeError: renderer bug"
    assert channel.calls == 1


async def test_a_retried_notification_resends_only_the_parts_not_sent(
        engine: AsyncEngine, wallet: Wallet, clock: FakeClock) -> None:
    uid = await wallet.open_account("telegram", "100")
    await queue(engine, clock, uid, kind="two", text="m")
    channel = Recorder()
    channel.fail.extend([None, ChannelError("reset")])
    d = dispatcher(engine, channel, clock)
    await d.run_once()
    assert channel.log == [("100", "m/1")]
    clock.advance(minutes=1)
    await d.run_once()
    assert channel.log == [("100", "m/1"), ("100", "m/2")]
    assert (await rows(engine, uid))[0].state == "sent"


async def test_users_of_channels_not_served_here_are_left_alone(
        engine: AsyncEngine, wallet: Wallet, clock: FakeClock) -> None:
    tg = await wallet.open_account("telegram", "100")
    wx = await wallet.open_account("wechat", "openid-1")
    await queue(engine, clock, tg, text="t")
    await queue(engine, clock, wx, text="w")
    channel = Recorder("telegram")
    assert await dispatcher(engine, channel, clock).run_once() == 1
    assert [r.state for r in await rows(engine)] == ["sent", "pending"]
    clock.advance(days=4)  # nobody delivered it within max_age (3 days): expired
    await dispatcher(engine, channel, clock).run_once()
    expired = (await rows(engine))[1]
    assert (expired.state, expired.last_error) == ("failed", "expired undelivered")


async def add_job(engine: AsyncEngine, clock: FakeClock, user_id: int,
                  state: str = "generating") -> int:
    now: datetime = clock()
    async with write(engine) as conn:
        result = await conn.execute(insert(jobs).values(
            user_id=user_id, model_id="demo-i2v", provider="demo", kind="image-to-video",
            prompt="p", inputs=[], credits=1, state=state, deadline_at=now + timedelta(hours=1),
            created_at=now, updated_at=now))
        job_id = new_id(result)
        await conn.execute(insert(job_messages).values(
            job_id=job_id, channel="telegram", address="100", message_id="m1", shown="queued",
            updated_at=now))
    return job_id


async def test_status_messages_are_edited_only_when_what_they_show_changes(
        engine: AsyncEngine, wallet: Wallet, clock: FakeClock) -> None:
    uid = await wallet.open_account("telegram", "100")
    job = await add_job(engine, clock, uid)
    ended = await add_job(engine, clock, uid, state="completed")
    renderer = Renderer()
    channel = Recorder()
    d = dispatcher(engine, channel, clock, renderer)
    renderer.status[job] = ("queued", Text(text="Queued"))
    renderer.status[ended] = ("done", Text(text="Done"))  # ended jobs are never looked at
    assert await d.update_statuses() == 0
    renderer.status[job] = ("generating:40", Text(text="Generating 40%"))
    assert await d.update_statuses() == 1
    assert await d.update_statuses() == 0
    assert channel.edits == [("100", "m1", "Generating 40%")]
    renderer.status[job] = ("generating:80", Text(text="Generating 80%"))
    channel.fail.append(ChannelError("timeout"))
    assert await d.update_statuses() == 0  # failed: the old key is back, so it tries again
    assert await d.update_statuses() == 1
    assert channel.edits[-1] == ("100", "m1", "Generating 80%")
    async with read(engine) as conn:
        assert (await conn.execute(select(job_messages.c.shown).where(
            job_messages.c.job_id == job))).scalar() == "generating:80"


async def test_a_tracked_text_becomes_the_jobs_status_message(
        engine: AsyncEngine, wallet: Wallet, clock: FakeClock) -> None:
    uid = await wallet.open_account("telegram", "100")
    await queue(engine, clock, uid, kind="track", job_id=42)
    renderer = Renderer()
    await dispatcher(engine, Recorder(), clock, renderer).run_once()
    assert renderer.remembered == [(42, "telegram", "100", "1")]


async def test_the_background_loop_delivers_and_stops_cleanly(
        engine: AsyncEngine, wallet: Wallet) -> None:
    uid = await wallet.open_account("telegram", "100")
    channel = Recorder()
    d = Dispatcher(engine=engine, handlers=Renderer(), channels={"telegram": channel})
    async with d:
        async with write(engine) as conn:
            await enqueue(conn, user_id=uid, kind="say", payload={"text": "live"},
                          now=datetime.now().astimezone())
        d.notify()
        async with asyncio.timeout(10):
            while not channel.log:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    assert channel.log == [("100", "live")]
    assert [r.state for r in await rows(engine)] == ["sent"]


class Gate(Recorder):
    """A channel whose sends wait until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.started = asyncio.Event()
        self.open = asyncio.Event()

    async def send(self, address: str, message: Outbound) -> str | None:
        self.started.set()
        await self.open.wait()
        return await super().send(address, message)


async def test_stopping_waits_for_the_message_in_flight_and_sends_no_more(
        engine: AsyncEngine, wallet: Wallet, clock: FakeClock) -> None:
    uid = await wallet.open_account("telegram", "100")
    await queue(engine, clock, uid, text="first")
    await queue(engine, clock, uid, text="second")
    channel = Gate()
    d = dispatcher(engine, channel, clock)
    await d.__aenter__()
    async with asyncio.timeout(10):
        await channel.started.wait()
    stopping = asyncio.create_task(d.__aexit__(None, None, None))
    await asyncio.sleep(0.1)
    assert not stopping.done()  # still waiting for "first"
    channel.open.set()
    async with asyncio.timeout(10):
        await stopping
    assert channel.log == [("100", "first")]
    first, second = await rows(engine, uid)
    assert (first.state, second.state, second.attempts) == ("sent", "pending", 0)


async def test_held_rows_wait_for_the_user_and_never_expire(engine: AsyncEngine, wallet: Wallet,
                                                            clock: FakeClock) -> None:
    ann = await wallet.open_account("wechat", "oAnn")
    bob = await wallet.open_account("wechat", "oBob")
    await queue(engine, clock, ann, kind="two", text="result")
    await queue(engine, clock, ann, text="credits")
    channel = Recorder("wechat")
    channel.fail.extend([None, Held("outside the window")])  # the second part is refused
    d = dispatcher(engine, channel, clock, max_age=timedelta(days=3))
    await d.run_once()
    channel.fail.append(Held("outside the window"))  # as WeChat keeps refusing the user
    await d.run_once()
    states = [(r.state, r.payload.get("_sent_parts")) for r in await rows(engine, ann)]
    assert states == [("held", 1), ("held", None)]
    await queue(engine, clock, bob, text="bob's")  # other users are not held up
    await d.run_once()
    assert channel.log == [("oAnn", "result/1"), ("oBob", "bob's")]
    clock.advance(days=4)  # past max_age: held rows do not expire
    assert await d.run_once() == 0
    assert [r.state for r in await rows(engine, ann)] == ["held", "held"]
    assert await sql.release_held(engine, channel="wechat", address="oAnn", now=clock()) == 2
    assert await sql.release_held(engine, channel="wechat", address="oBob", now=clock()) == 0
    assert await d.run_once() == 2
    assert [t for a, t in channel.log if a == "oAnn"] == ["result/1", "result/2", "credits"]
    assert [r.state for r in await rows(engine, ann)] == ["sent", "sent"]
