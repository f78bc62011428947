"""Configuration: `config.toml` loaded once into frozen dataclasses.

Order of precedence, lowest first: the defaults below, `config.toml`, environment variables
`VIDEOFLY__SECTION__KEY` (double underscores; the value is read as a TOML literal when it is one,
so `VIDEOFLY__TELEGRAM__ADMINS='[1, 2]'` is a list and `VIDEOFLY__HTTP__PORT=9000` a number,
otherwise as a plain string), and for the database `DATABASE_URL`.

Secrets are never read from a file: they come from the environment only (`Secrets`), and their
values never appear in a repr, a log line or an error message. `Secrets` keeps the names in
`SECRET_NAMES` and each registered provider's key (`providers.PROVIDERS`, read when a `Secrets`
is made: the one dependency of `core` on another package, which imports nothing from `core`).

A wrong value stops the program at start with a `ConfigError` whose message names the key and
where it came from. Unknown keys are errors too: a typo must not silently fall back to a default.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ConfigDict, TypeAdapter, ValidationError, field_validator, model_validator
from pydantic.dataclasses import dataclass

__all__ = [
    "FREE",
    "SECRET_NAMES",
    "AppConfig",
    "ChatConfig",
    "Config",
    "ConfigError",
    "CreditsConfig",
    "DatabaseConfig",
    "GenerationConfig",
    "HttpConfig",
    "MembershipsConfig",
    "ModelConfig",
    "PackageConfig",
    "PaymentsConfig",
    "PlanConfig",
    "Secrets",
    "StorageConfig",
    "TelegramConfig",
    "TierConfig",
    "WechatConfig",
    "load_config",
    "secret_names",
]

_STRICT = ConfigDict(extra="forbid")
ENV_PREFIX = "VIDEOFLY__"
DEFAULT_PATH = Path("config.toml")


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key."""


@dataclass(frozen=True, kw_only=True, slots=True, config=_STRICT)
class AppConfig:
    default_language: Literal["en", "zh"] = "en"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    data_dir: str = "data"


@dataclass(frozen=True, kw_only=True, slots=True, config=_STRICT)
class DatabaseConfig:
    url: str = "sqlite+aiosqlite:///data/videofly.db"
    pool_size: int = field(default=10)
    max_overflow: int = 10
    sqlite_busy_timeout_ms: int = 30_000
    echo: bool = False

    @field_validator("url")
    @classmethod
    def _known_driver(cls, v: str) -> str:
        if not v.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return v

    @field_validator("pool_size", "max_overflow", "sqlite_busy_timeout_ms")
    @classmethod
    def _non_negative(cls, v: int) -> int:
        if v < 0:
            raise ValueError("must be >= 0")
        return v


@dataclass(frozen=True, kw_only=True, slots=True, config=_STRICT)
class HttpConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = "http://127.0.0.1:8080"
    max_body_bytes: int = 1_048_576
    # Slow clients: seconds to send a whole request head (also the idle keep-alive limit),
    # and seconds to send a body; past them the connection is closed, or the answer is 408.
    header_timeout_seconds: float = 15.0
    body_timeout_seconds: float = 30.0

    @field_validator("header_timeout_seconds", "body_timeout_seconds")
    @classmethod
    def _positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("must be > 0")
        return v

    @field_validator("port")
    @classmethod
    def _port(cls, v: int) -> int:
        if not 0 <= v <= 65535:
            raise ValueError("must be between 0 and 65535")
        return v

    @field_validator("public_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return v.rstrip("/")


@dataclass(frozen=True, kw_only=True, slots=True, config=_STRICT)
class TelegramConfig:
    api_base_url: str = "https://api.telegram.org/bot"
    api_file_url: str = "https://api.telegram.org/file/bot"
    local_mode: bool = False
    mode: Literal["polling", "webhook"] = "polling"
    admins: tuple[int, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True, config=_STRICT)
class WechatConfig:
    # Every WeChat API call goes here, the access token included; "…/cgi-bin/" is accepted too.
    api_base_url: str = "https://api.weixin.qq.com"
    admins: tuple[str, ...] = ()
    # "active": a verified service account sends customer-service messages; "passive": an
    # unverified subscription account (48001) can only answer inside the reply to a message.
    mode: Literal["active", "passive"] = "active"
    # Customer-service messages WeChat allows per user message (errcode 45047 past it).
    cs_quota: int = 5
    # Temporary media limits: video ≤ 10 MB MP4, image ≤ 2 MB, thumb ≤ 64 KB JPEG.
    video_limit_bytes: int = 10 * 1024 * 1024
    image_limit_bytes: int = 2 * 1024 * 1024
    thumb_limit_bytes: int = 64 * 1024
    # A text message longer than this (UTF-8 bytes) goes out in several.
    text_limit_bytes: int = 2048
    # Seconds a POST /wechat waits for the answer before it stops waiting (WeChat waits 5).
    reply_window_seconds: float = 4.0
    # Largest POST /wechat body read; more gets 413 (WeChat's messages are a few KB).
    max_body_bytes: int = 65_536
    # Create the custom menu (Make / Balance / Check in / Top up) at start.
    menu: bool = True

    @model_validator(mode="after")
    def _sane_limits(self) -> WechatConfig:
        if not 1 <= self.cs_quota <= 100:
            raise ValueError("cs_quota must be 1..100")
        if min(self.video_limit_bytes, self.image_limit_bytes, self.thumb_limit_bytes) < 1024:
            raise ValueError("media limits must be at least 1024 bytes")
        if not 64 <= self.text_limit_bytes <= 2048:
            raise ValueError("text_limit_bytes must be 64..2048")
        return self

    @field_validator("reply_window_seconds")
    @classmethod
    def _window(cls, v: float) -> float:
        if not 0 < v < 5:
            raise ValueError("must be above 0 and below WeChat's 5 seconds")
        return v

    @field_validator("max_body_bytes")
    @classmethod
    def _body(cls, v: int) -> int:
        if v < 1024:
            raise ValueError("must be at least 1024")
        return v


@dataclass(frozen=True, kw_only=True, slots=True, config=_STRICT)
class TierConfig:
    """What a tier unlocks: jobs at once, clothing photos per try-on, the models it may use."""

    concurrency: int = 3
    max_clothes: int = 1
    # Model ids this tier may use; "*" for every model.
    models: tuple[str, ...] = ("*",)

    @model_validator(mode="after")
    def _sane(self) -> TierConfig:
        if self.concurrency < 1 or not 1 <= self.max_clothes <= 10:
            raise ValueError("concurrency must be >= 1 and max_clothes 1..10")
        return self

    def allows(self, model_id: str) -> bool:
        return "*" in self.models or model_id in self.models


FREE = "free"


def _default_tiers() -> dict[str, TierConfig]:
    return {FREE: TierConfig(concurrency=3, max_clothes=1),
            "plus": TierConfig(concurrency=5, max_clothes=10),
            "pro": TierConfig(concurrency=10, max_clothes=10)}


def _tier_of(tiers: Mapping[str, TierConfig], name: str) -> TierConfig:
    """A tier's rules; a name not configured (an old or removed tier) gets the free tier's."""
    return tiers.get(name) or tiers.get(FREE) or TierConfig()


@dataclass(frozen=True, kw_only=True, slots=True, config=_STRICT)
class ChatConfig:
    # A conversation left this long goes back to the main menu (its draft is dropped).
    idle_minutes: int = 30
    # Ledger entries per /history page, and jobs listed by /videos.
    history_page_size: int = 10
    videos_listed: int = 5

    # Filled from the top-level [tiers.<name>] tables by `Config` (not a key of [chat]).
    tiers: dict[str, TierConfig] = field(default_factory=_default_tiers)

    @model_validator(mode="after")
    def _sane(self) -> ChatConfig:
        if min(self.idle_minutes, self.history_page_size, self.videos_listed) < 1:
            raise ValueError("idle_minutes, history_page_size and videos_listed must be >= 1")
        return self

    def max_clothes(self, tier: str) -> int:
        return _tier_of(self.tiers, tier).max_clothes


@dataclass(frozen=True, kw_only=True, slots=True, config=_STRICT)
class PaymentsConfig:
    # Where Stripe Checkout and Creem send the buyer back after paying or cancelling.
    success_url: str = "https://t.me/"
    cancel_url: str = "https://t.me/"
    # API bases (override to test against local servers).
    stripe_api_base: str = "https://api.stripe.com"
    creem_api_base: str = "https://api.creem.io"
    # Telegram Stars invoices (needs packages with stars > 0 and a Telegram bot).
    stars: bool = True
    # Stripe Checkout's payment methods (`payment_method_types`), e.g. ["card", "wechat_pay",
    # "alipay"] for buyers in WeChat's browser; empty: those enabled in the Stripe Dashboard.
    stripe_methods: tuple[str, ...] = ()

    @field_validator("stripe_methods")
    @classmethod
    def _method_names(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if any(not m or not m.replace("_", "").isalpha() or not m.islower() for m in v):
            raise ValueError("each method is a Stripe payment method type such as \"card\"")
        if len(set(v)) != len(v):
            raise ValueError("a method is listed twice")
        return v


@dataclass(frozen=True, kw_only=True, slots=True, config=_STRICT)
class CreditsConfig:
    new_user_bonus: int = 10
    new_user_bonus_days: int = 30
    checkin_amount: int = 2
    checkin_expires_days: int = 0
    timezone: str = "UTC"

    @field_validator("new_user_bonus", "new_user_bonus_days", "checkin_amount",
                     "checkin_expires_days")
    @classmethod
    def _non_negative(cls, v: int) -> int:
        if v < 0:
            raise ValueError("must be >= 0")
        return v

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True, kw_only=True, slots=True, config=_STRICT)
class ModelConfig:
    id: str
    name: str
    provider: str
    kind: Literal["text-to-video", "image-to-video", "try-on"]
    credits: int | None = None
    credits_per_second: int | None = None
    provider_model: str = ""  # the provider's own model name; empty means the same as id
    durations: tuple[int, ...] = ()
    aspect_ratios: tuple[str, ...] = ()
    enabled: bool = True

    @model_validator(mode="after")
    def _one_price(self) -> ModelConfig:
        if (self.credits is None) == (self.credits_per_second is None):
            raise ValueError("set exactly one of credits or credits_per_second")
        if (self.credits or 0) < 0 or (self.credits_per_second or 0) < 0:
            raise ValueError("prices must be >= 0")
        if self.credits_per_second is not None and not self.durations:
            raise ValueError("credits_per_second needs durations")
        if any(d <= 0 for d in self.durations):
            raise ValueError("durations must be positive seconds")
        return self


@dataclass(frozen=True, kw_only=True, slots=True, config=_STRICT)
class GenerationConfig:
    # Filled from the top-level [tiers.<name>] tables by `Config` (not a key of [generation]).
    tiers: dict[str, TierConfig] = field(default_factory=_default_tiers)
    # Poll a job that has had no callback for this long, backing off up to poll_max_seconds.
    poll_after_seconds: int = 30
    poll_max_seconds: int = 300
    # A job still unfinished this long after it started fails and its credits come back.
    deadline_minutes: int = 60
    # Provider results: size limit, download timeout, hosts exempt from the public-address rule.
    result_max_bytes: int = 500_000_000
    download_timeout_seconds: int = 600
    allow_hosts: tuple[str, ...] = ()
    # Housekeeping: delete failed jobs, archive completed ones (removing their files), in days.
    failed_retention_days: int = 30
    completed_retention_days: int = 90
    # Demo provider: seconds before it calls back.
    demo_delay_seconds: float = 2.0
    # The OpenAI-compatible gateway of the try-on image model (e.g. https://gateway.example).
    image_base_url: str = ""

    @model_validator(mode="after")
    def _sane(self) -> GenerationConfig:
        numbers = (self.poll_after_seconds, self.poll_max_seconds, self.deadline_minutes,
                   self.result_max_bytes, self.download_timeout_seconds,
                   self.failed_retention_days, self.completed_retention_days)
        if min(numbers) < 1 or self.demo_delay_seconds < 0:
            raise ValueError("durations, limits and retention days must be positive")
        return self

    def tier(self, name: str) -> TierConfig:
        return _tier_of(self.tiers, name)

    def limit_for(self, tier: str) -> int:
        return self.tier(tier).concurrency


@dataclass(frozen=True, kw_only=True, slots=True, config=_STRICT)
class PackageConfig:
    id: str
    credits: int
    price: Decimal
    currency: str = "USD"
    stars: int = 0
    expires_days: int = 0
    creem_product_id: str = ""  # the Creem product sold for this package ("" = not on Creem)

    @model_validator(mode="after")
    def _sane(self) -> PackageConfig:
        if self.credits <= 0 or self.price < 0 or self.stars < 0 or self.expires_days < 0:
            raise ValueError("credits must be > 0; price, stars and expires_days >= 0")
        if len(self.currency) != 3 or not self.currency.isalpha():
            raise ValueError("currency must be a three-letter ISO code")
        return self


@dataclass(frozen=True, kw_only=True, slots=True, config=_STRICT)
class PlanConfig:
    """A membership plan: a tier and credits every paid period."""

    id: str
    tier: str
    credits: int
    period_days: int = 30
    price: Decimal = Decimal(0)
    currency: str = "USD"
    stars: int = 0  # Telegram Stars per 30 days (Telegram's only subscription period)
    stripe_price_id: str = ""  # a recurring Stripe price; "" = priced inline from `price`
    creem_product_id: str = ""  # a Creem subscription product; "" = not on Creem

    @model_validator(mode="after")
    def _sane(self) -> PlanConfig:
        if self.credits <= 0 or not 1 <= self.period_days <= 365:
            raise ValueError("credits must be > 0 and period_days 1..365")
        if self.price < 0 or self.stars < 0:
            raise ValueError("price and stars must be >= 0")
        if self.stars and self.period_days != 30:
            raise ValueError("Stars subscriptions last 30 days: stars needs period_days = 30")
        if len(self.currency) != 3 or not self.currency.isalpha():
            raise ValueError("currency must be a three-letter ISO code")
        if self.tier == FREE:
            raise ValueError("a plan sells a paid tier, not 'free'")
        return self


@dataclass(frozen=True, kw_only=True, slots=True, config=_STRICT)
class MembershipsConfig:
    # next_cycle: a change of plan takes effect at the next renewal. immediate: an upgrade takes
    # effect at once with the credit difference for the rest of the period (prorated, rounded
    # down); a downgrade always waits for the next cycle.
    upgrade_policy: Literal["next_cycle", "immediate"] = "next_cycle"
    # A period's credits and tier last this long past its end, so a renewal charged a little
    # late does not drop the member to free in between.
    grace_hours: int = 48
    # The renewal reminder goes this many days before a period ends.
    remind_days: int = 3

    @model_validator(mode="after")
    def _sane(self) -> MembershipsConfig:
        if self.grace_hours < 0 or self.remind_days < 0:
            raise ValueError("grace_hours and remind_days must be >= 0")
        return self


@dataclass(frozen=True, kw_only=True, slots=True, config=_STRICT)
class StorageConfig:
    backend: Literal["local", "s3"] = "local"
    local_dir: str = "data/media"
    s3_endpoint_url: str = ""
    bucket: str = ""
    region: str = "us-east-1"
    public_base_url: str = ""
    link_ttl_seconds: int = 86_400


@dataclass(frozen=True, kw_only=True, slots=True, config=_STRICT)
class Config:
    app: AppConfig = field(default_factory=AppConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    telegram: TelegramConfig = field(default_factory=TelegramConfig)
    wechat: WechatConfig = field(default_factory=WechatConfig)
    credits: CreditsConfig = field(default_factory=CreditsConfig)
    chat: ChatConfig = field(default_factory=ChatConfig)
    payments: PaymentsConfig = field(default_factory=PaymentsConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    models: tuple[ModelConfig, ...] = ()
    packages: tuple[PackageConfig, ...] = ()
    tiers: dict[str, TierConfig] = field(default_factory=_default_tiers)
    plans: tuple[PlanConfig, ...] = ()
    memberships: MembershipsConfig = field(default_factory=MembershipsConfig)

    @model_validator(mode="after")
    def _unique_ids(self) -> Config:
        for name, items in (("models", self.models), ("packages", self.packages),
                            ("plans", self.plans)):
            ids = [i.id for i in items]
            dup = {i for i in ids if ids.count(i) > 1}
            if dup:
                raise ValueError(f"{name}: duplicate id {sorted(dup)[0]!r}")
        if FREE not in self.tiers:
            raise ValueError("tiers: a [tiers.free] table is needed (everyone starts free)")
        for plan in self.plans:
            if plan.tier not in self.tiers:
                raise ValueError(f"plans: {plan.id!r} sells tier {plan.tier!r}, not in [tiers]")
        known = {m.id for m in self.models}
        for name, tier in self.tiers.items():
            unknown = sorted(m for m in tier.models if m != "*" and m not in known)
            if unknown:
                raise ValueError(f"tiers.{name}.models: unknown model {unknown[0]!r}")
        # One source of truth: the chat and the job service read the tier rules they are given.
        object.__setattr__(self, "chat", replace(self.chat, tiers=dict(self.tiers)))
        object.__setattr__(self, "generation", replace(self.generation, tiers=dict(self.tiers)))
        return self

    def tier(self, name: str) -> TierConfig:
        """The rules of tier `name`; unknown names get the free tier's."""
        return _tier_of(self.tiers, name)

    def plan(self, plan_id: str) -> PlanConfig | None:
        return next((p for p in self.plans if p.id == plan_id), None)


# Keys that moved to [tiers.<name>]: refused at start with what to write instead.
_RENAMED = {
    ("chat", "tryon_max_clothes"): "max_clothes",
    ("generation", "concurrency"): "concurrency",
}


def _check_renamed(data: Mapping[str, Any], origin: Mapping[str, str], source: str) -> None:
    for (section, key), new in _RENAMED.items():
        table = data.get(section)
        if isinstance(table, Mapping) and key in table:
            where = origin.get(f"{section}.{key}", source)
            raise ConfigError(
                f"[{section}] {key} (from {where}) was replaced by the tier tables: write "
                f"`{new} = N` under each [tiers.free], [tiers.plus], [tiers.pro] instead "
                f"(\"default\" becomes [tiers.free])")


# The providers' API keys are not listed here: their registry names them (`secret_names`).
SECRET_NAMES = (
    "DATABASE_URL", "TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET", "WECHAT_APP_ID",
    "WECHAT_APP_SECRET", "WECHAT_TOKEN", "WECHAT_AES_KEY", "PROVIDER_CALLBACK_SECRET",
    "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "CREEM_API_KEY", "CREEM_WEBHOOK_SECRET",
    "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY", "MEDIA_LINK_SECRET",
)


def secret_names() -> frozenset[str]:
    """Every secret `Secrets` keeps: `SECRET_NAMES` and each registered provider's key."""
    from providers import PROVIDERS  # at call time: config loads without the provider clients

    return frozenset((*SECRET_NAMES, *(spec.key_variable for spec in PROVIDERS.values())))


class Secrets(Mapping[str, str]):
    """Secret values from the environment; a read-only mapping whose repr shows names only."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, str]) -> None:
        known = secret_names()
        self._values = {k: v for k, v in values.items() if k in known and v}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Secrets:
        return cls(os.environ if environ is None else environ)

    def __getitem__(self, name: str) -> str:
        return self._values[name]

    def __iter__(self) -> Any:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Secrets(set={sorted(self._values)})"


_ADAPTER: TypeAdapter[Config] = TypeAdapter(Config)


def _env_literal(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    """Merge VIDEOFLY__SECTION__KEY overrides into `data`; return key path → variable name."""
    origin: dict[str, str] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX):].lower().split("__")
        if len(parts) != 2 or not all(parts):
            raise ConfigError(f"{name}: expected VIDEOFLY__SECTION__KEY")
        section, key = parts
        target = data.setdefault(section, {})
        if not isinstance(target, dict):
            raise ConfigError(f"{name}: [{section}] is not a table of keys")
        target[key] = _env_literal(raw)
        origin[f"{section}.{key}"] = f"environment variable {name}"
    if environ.get("DATABASE_URL"):
        data.setdefault("database", {})["url"] = environ["DATABASE_URL"]
        origin["database.url"] = "environment variable DATABASE_URL"
    return origin


def _describe(err: ValidationError, origin: Mapping[str, str], source: str) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        # Never echo the offending value: it may be a secret such as a database password.
        where = origin.get(loc, source)
        lines.append(f"{loc}: {e['msg']} (from {where})")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def load_config(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Reads the config file (if any), applies environment overrides and validates the lot."""
    environ = os.environ if environ is None else environ
    explicit = path is not None or bool(environ.get("VIDEOFLY_CONFIG"))
    file = Path(path if path is not None else environ.get("VIDEOFLY_CONFIG") or DEFAULT_PATH)
    data: dict[str, Any] = {}
    if file.is_file():
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    elif explicit:
        raise ConfigError(f"{file}: config file not found")
    origin = _apply_env(data, environ)
    _check_renamed(data, origin, str(file))
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, origin, str(file))) from None
