"""The generate conversation: kind → photo(s) → prompt → model → duration → aspect → confirm.

The next step is always computed from the draft (`next_step`): the first thing still missing.
So a choice that leaves nothing to ask (one kind offered, a model with one duration) is skipped,
a restored draft resumes at the right question, and "make it again" is a full draft that lands
on the confirmation. Each step's question is `ask(step, draft)`, which is also what a user gets
again after free text where a button was expected, or after an out-of-date button.

Try-on: a person photo, then 1..N clothing photos (N by tier, `[chat] tryon_max_clothes`); photos
may come together in one update (the first is the person) or as several updates sharing an
album, and the first clothing photo brings a Done button. A photo at the photo step may carry the
prompt as its caption, which skips the prompt question.

Confirm saves the conversation as finished first and starts the job after (`Reply.after`): two
instances racing on one double-tapped Confirm start one job. If the start fails for want of
credits or because too many jobs run, the draft is put back at the confirmation, so the user can
/checkin or wait and press Confirm again.
"""

from __future__ import annotations

from dataclasses import replace

from core.config import ModelConfig
from generation import TooManyJobs, UnknownModel
from wallet import InsufficientCredits

from . import state
from .choices import Choice, decode, encode
from .deps import ChatDeps, Ctx, Reply, Turn
from .errors import error_text
from .messages import t, tn
from .state import Chat, Draft, Step
from .status import status_text
from .types import Button, Outbound, Text
from .ui import Rows, ask_text, button, fits, menu_text, question

__all__ = ["KINDS", "PROMPT_MAX", "ask", "begin", "on_update", "start_again"]

KINDS = ("text-to-video", "image-to-video", "try-on")
PHOTO_STEPS = (Step.PHOTO, Step.PERSON, Step.CLOTHES)
PROMPT_MAX = 2000


def kinds(deps: ChatDeps) -> list[str]:
    return [k for k in KINDS if deps.catalogue.offered(k)]


def max_clothes(deps: ChatDeps, ctx: Ctx) -> int:
    return deps.config.chat.max_clothes(ctx.tier)


def _model(deps: ChatDeps, draft: Draft) -> ModelConfig | None:
    if draft.model is None:
        return None
    try:
        model = deps.catalogue.get(draft.model)
    except UnknownModel:  # disabled since it was chosen
        return None
    return model if model.kind == draft.kind else None


def next_step(deps: ChatDeps, ctx: Ctx, draft: Draft) -> tuple[Step, Draft]:
    """The first thing the draft still lacks (filling in choices there is only one of)."""
    offered = kinds(deps)
    if draft.kind not in offered:
        if len(offered) != 1:
            return Step.KIND, Draft()
        draft = replace(draft, kind=offered[0])
    if draft.kind == "image-to-video" and not draft.photos:
        return Step.PHOTO, draft
    if draft.kind == "try-on":
        if not draft.photos:
            return Step.PERSON, draft
        clothes = len(draft.photos) - 1
        if clothes < 1 or (not draft.clothes_done and clothes < max_clothes(deps, ctx)):
            return Step.CLOTHES, draft
    if draft.prompt is None:
        return Step.PROMPT, draft
    model = _model(deps, draft)
    if model is None:
        return Step.MODEL, replace(draft, model=None, duration=None, aspect=None)
    if draft.duration is None and model.durations:
        if len(model.durations) > 1:
            return Step.DURATION, draft
        draft = replace(draft, duration=model.durations[0])
    if draft.aspect is None and model.aspect_ratios:
        if len(model.aspect_ratios) > 1:
            return Step.ASPECT, draft
        draft = replace(draft, aspect=model.aspect_ratios[0])
    return Step.CONFIRM, draft


def _model_button(deps: ChatDeps, lang: str, model: ModelConfig) -> Button:
    if model.credits is not None:
        label = t(lang, "model.flat", name=model.name,
                  credits=tn(lang, "n.credits", model.credits))
    else:
        low = deps.catalogue.quote(model.id, duration=min(model.durations)).credits
        key = "model.from" if len(model.durations) > 1 else "model.flat"
        label = t(lang, key, name=model.name, credits=tn(lang, "n.credits", low))
    return Button(label=label, data=encode(Choice("model", (model.id,))))


async def ask(deps: ChatDeps, ctx: Ctx, step: Step, draft: Draft) -> Text:
    """The question of `step`, with its buttons."""
    lang = ctx.lang
    if step is Step.IDLE:
        return menu_text(lang)
    if step is Step.KIND:
        rows: Rows = tuple((button(lang, f"kind.{k}", Choice("kind", (k,))),) for k in kinds(deps))
        return question(lang, t(lang, "gen.kind"), rows)
    if step is Step.PHOTO:
        return question(lang, t(lang, "gen.photo"))
    if step is Step.PERSON:
        return question(lang, t(lang, "gen.person"))
    if step is Step.CLOTHES:
        count, most = len(draft.photos) - 1, max_clothes(deps, ctx)
        if count < 1:
            return question(lang, tn(lang, "gen.clothes", most))
        return question(lang, t(lang, "gen.clothes_more", count=count, max=most),
                        ((button(lang, "btn.done", Choice("done")),),))
    if step is Step.PROMPT:
        key = "gen.prompt_tryon" if draft.kind == "try-on" else "gen.prompt"
        return ask_text(lang, t(lang, key), ctx.caps)
    if step is Step.MODEL:
        rows = tuple((_model_button(deps, lang, m),)
                     for m in deps.catalogue.offered(draft.kind) if fits(Choice("model", (m.id,))))
        return question(lang, t(lang, "gen.model"), rows)
    model = _model(deps, draft)
    assert model is not None  # next_step asks for a model before these steps
    if step is Step.DURATION:
        rows = tuple((button(lang, "duration.label", Choice("duration", (str(d),)), seconds=d,
                             credits=tn(lang, "n.credits",
                                        deps.catalogue.quote(model.id, duration=d).credits)),)
                     for d in model.durations)
        return question(lang, t(lang, "gen.duration"), rows)
    if step is Step.ASPECT:
        rows = (tuple(Button(label=a, data=encode(Choice("aspect", (a,))))
                      for a in model.aspect_ratios),)
        return question(lang, t(lang, "gen.aspect"), rows)
    return await _confirmation(deps, ctx, draft, model)


async def _confirmation(deps: ChatDeps, ctx: Ctx, draft: Draft, model: ModelConfig) -> Text:
    lang = ctx.lang
    quote = deps.catalogue.quote(model.id, duration=draft.duration, aspect_ratio=draft.aspect)
    available = (await deps.wallet.balance(ctx.user_id)).available
    details = ", ".join([*([t(lang, "gen.seconds", seconds=quote.duration)]
                           if quote.duration else []),
                         *([quote.aspect_ratio] if quote.aspect_ratio else [])])
    text = t(lang, "gen.confirm", kind=t(lang, f"kind.{model.kind}"), model=model.name,
             details=t(lang, "gen.details", details=details) if details else "",
             cost=tn(lang, "n.credits", quote.credits),
             balance=tn(lang, "n.credits", available))
    if available < quote.credits:
        # Short: no Confirm that would only be refused; ways to get the credits instead.
        text += "\n\n" + tn(lang, "gen.short", quote.credits - available)
        return question(lang, text, ((button(lang, "btn.topup", Choice("topup")),
                                      button(lang, "btn.checkin", Choice("checkin"))),))
    text += "\n" + t(lang, "gen.after", after=tn(lang, "n.credits", available - quote.credits))
    return question(lang, text, ((button(lang, "btn.confirm", Choice("confirm")),),))


async def _advance(deps: ChatDeps, ctx: Ctx, draft: Draft,
                   before: list[Outbound] | None = None) -> Reply:
    step, draft = next_step(deps, ctx, draft)
    return Reply([*(before or []), await ask(deps, ctx, step, draft)], step, draft)


async def begin(deps: ChatDeps, ctx: Ctx) -> Reply:
    """Starts a new draft (dropping any other)."""
    if not kinds(deps):
        return Reply([menu_text(ctx.lang, "gen.none")], Step.IDLE)
    return await _advance(deps, ctx, Draft())


async def start_again(deps: ChatDeps, ctx: Ctx, draft: Draft) -> Reply:
    """A complete draft (from an earlier job) straight to its confirmation."""
    return await _advance(deps, ctx, draft)


async def _repeat(deps: ChatDeps, ctx: Ctx, chat: Chat, note: str | None = None) -> Reply:
    lead = [Text(text=t(ctx.lang, note))] if note else []
    return Reply([*lead, await ask(deps, ctx, chat.step, chat.draft)])


async def on_update(deps: ChatDeps, ctx: Ctx, chat: Chat, turn: Turn) -> Reply:
    """Handles an update inside the conversation (not a command, not a global button)."""
    inbound = turn.inbound
    if inbound.choice is not None:
        choice = decode(inbound.choice)
        if choice is None:
            return await _repeat(deps, ctx, chat, "stale")
        return await _on_choice(deps, ctx, chat, choice)
    if inbound.photos and chat.step in PHOTO_STEPS:
        return await _on_photos(deps, ctx, chat, turn)
    text = inbound.text.strip()
    if chat.step is Step.PROMPT and text and not inbound.photos:
        if len(text) > PROMPT_MAX:
            return Reply([question(ctx.lang, t(ctx.lang, "gen.prompt_too_long",
                                                max=PROMPT_MAX))])
        return await _advance(deps, ctx, replace(chat.draft, prompt=text))
    if chat.step is Step.IDLE:
        return Reply([menu_text(ctx.lang, "menu.hint")])
    return await _repeat(deps, ctx, chat)


async def _on_choice(deps: ChatDeps, ctx: Ctx, chat: Chat, choice: Choice) -> Reply:
    step, draft = chat.step, chat.draft
    model = _model(deps, draft)
    head, value = choice.name, choice.arg
    if step is Step.KIND and head == "kind" and value in kinds(deps):
        return await _advance(deps, ctx, Draft(kind=value))
    if step is Step.MODEL and head == "model" and any(
            m.id == value for m in deps.catalogue.offered(draft.kind)):
        return await _advance(deps, ctx, replace(draft, model=value, duration=None,
                                                 aspect=None))
    if step is Step.DURATION and head == "duration" and model is not None and value.isdigit() \
            and int(value) in model.durations:
        return await _advance(deps, ctx, replace(draft, duration=int(value)))
    if step is Step.ASPECT and head == "aspect" and model is not None \
            and value in model.aspect_ratios:
        return await _advance(deps, ctx, replace(draft, aspect=value))
    if step is Step.CLOTHES and head == "done" and len(draft.photos) > 1:
        return await _advance(deps, ctx, replace(draft, clothes_done=True))
    if step is Step.CONFIRM and head == "confirm":
        return _confirm(deps, ctx, draft)
    return await _repeat(deps, ctx, chat, "stale")


async def _on_photos(deps: ChatDeps, ctx: Ctx, chat: Chat, turn: Turn) -> Reply:
    draft, inbound = chat.draft, turn.inbound
    if chat.step is Step.PHOTO:
        [key] = await turn.photo_keys(deps.storage, 1)
        caption = inbound.text.strip()
        prompt = caption[:PROMPT_MAX] if caption and not caption.startswith("/") else None
        return await _advance(deps, ctx, replace(draft, photos=(key,), prompt=prompt))
    most = max_clothes(deps, ctx)
    photos = draft.photos if chat.step is Step.CLOTHES else ()  # PERSON: a person comes first
    room = 1 + most - len(photos)
    kept = (*photos, *await turn.photo_keys(deps.storage, room))
    notes: list[Outbound] = []
    if len(inbound.photos) > room:
        notes.append(Text(text=t(ctx.lang, "gen.clothes_full", max=most)))
    return await _advance(deps, ctx, replace(draft, photos=kept,
                                             clothes_done=len(kept) - 1 >= most,
                                             album=inbound.album), notes)


def _confirm(deps: ChatDeps, ctx: Ctx, draft: Draft) -> Reply:
    async def start(saved: Chat) -> list[Outbound]:
        assert draft.model is not None
        assert draft.prompt is not None
        try:
            job = await deps.jobs.start(ctx.user_id, draft.model, prompt=draft.prompt,
                                        image_keys=list(draft.photos), duration=draft.duration,
                                        aspect_ratio=draft.aspect)
        except (InsufficientCredits, TooManyJobs) as exc:
            # Keep the draft at the confirmation: Confirm works again once the user can.
            await state.save(deps.engine, saved, Step.CONFIRM, draft, deps.clock())
            return [Text(text=error_text(ctx.lang, exc))]
        except Exception as exc:
            return [Text(text=error_text(ctx.lang, exc)), menu_text(ctx.lang)]
        typical = await deps.jobs.typical_seconds(job.model_id)
        return [Text(text=status_text(ctx.lang, job, now=deps.clock(), typical=typical),
                     track_job=job.id)]

    return Reply([], Step.IDLE, Draft(), after=start)
