"""The English message catalogue: every text a chat user sees, by key.

Placeholders are `str.format` fields (`{credits}`); the Chinese catalogue (`messages_zh`) has the
same keys with the same fields, which `tests/unit/test_messages.py` proves. Other packages may add
keys here (and in Chinese) for their own texts; keep the namespaces (`pay.`, `tg.`, …).
"""

from __future__ import annotations

TEXTS: dict[str, str] = {
    # --- first contact, menus, general --------------------------------------------------------
    "welcome": "Welcome to VideoFly! Send a photo and a few words, and get a video back.",
    "welcome.bonus": "You have {credits} free credits to start, valid until {date}.",
    "welcome.bonus_forever": "You have {credits} free credits to start.",
    "menu.prompt": "What would you like to do?",
    "menu.hint": "Choose from the menu, or send /help.",
    "unknown": "Sorry, I don't know that command. Send /help to see what I can do.",
    "busy": "I'm busy with your previous message. Please try again in a moment.",
    "idle.reset": "Your unfinished request timed out, so I started over.",
    "stale": "That menu is out of date.",
    "cancelled": "Cancelled.",
    "btn.generate": "🎬 Make a video",
    "btn.balance": "💰 Balance",
    "btn.checkin": "📅 Check in",
    "btn.topup": "➕ Top up",
    "btn.videos": "🎞 My videos",
    "btn.help": "❓ Help",
    "btn.cancel": "✖ Cancel",
    "btn.confirm": "✅ Confirm",
    "btn.done": "✔ Done",
    "btn.older": "◀ Older",
    "btn.newer": "Newer ▶",
    "btn.resend": "▶ Send #{job_id} again",
    "btn.retry": "↻ Retry #{job_id}",
    "btn.again": "↻ Make #{job_id} again",
    "btn.pay": "Pay {price} {currency}",
    "lang.en": "English",
    "lang.zh": "中文",
    # --- command menu and help ----------------------------------------------------------------
    "cmd.start": "Main menu",
    "cmd.generate": "Make a video",
    "cmd.balance": "Your credits",
    "cmd.history": "Credit history",
    "cmd.videos": "Your recent videos",
    "cmd.checkin": "Daily free credits",
    "cmd.redeem": "Redeem a code",
    "cmd.topup": "Buy credits",
    "cmd.language": "Change language",
    "cmd.cancel": "Cancel what you are doing",
    "cmd.help": "What I can do",
    "help.title": "Here is what I can do:",
    "help.admin": "Admin: /grant USER CREDITS [reason], /deduct USER CREDITS [reason], "
                  "/user USER, /code CREDITS [USES] [DAYS], /stats, /refund CHARGE_ID. "
                  "USER is #id, a Telegram id or a WeChat openid.",
    # --- the generate conversation ------------------------------------------------------------
    "gen.none": "No models are available right now. Please try again later.",
    "gen.kind": "What would you like to make?",
    "kind.text-to-video": "Text to video",
    "kind.image-to-video": "Photo to video",
    "kind.try-on": "Virtual try-on",
    "gen.photo": "Send the photo to bring to life.",
    "gen.person": "Send a photo of the person who will try the clothes on.",
    "gen.clothes": "Now send up to {max} photos of clothes (several at once is fine).",
    "gen.clothes_more": "{count} of {max} clothing photos received. Send more, or press Done.",
    "gen.clothes_full": "That is the most ({max}) clothing photos; extra photos were left out.",
    "gen.prompt": "Describe what should happen, in a sentence or two.",
    "gen.prompt_tryon": "Describe the look you want (for example: a studio photo, full body).",
    "gen.prompt_too_long": "That is too long: please keep it under {max} characters.",
    "gen.model": "Choose a model:",
    "model.flat": "{name} · {credits} credits",
    "model.from": "{name} · from {credits} credits",
    "gen.duration": "How long should it be?",
    "duration.label": "{seconds} s · {credits} credits",
    "gen.aspect": "Which shape?",
    "gen.confirm": "{kind} with {model}{details}\nCost: {cost} credits\n"
                   "Balance now: {balance}\nBalance after: {after}",
    "gen.details": " ({details})",
    "gen.seconds": "{seconds} s",
    "gen.photos_gone": "The photos of that job are no longer stored. Please start a new one.",
    # --- photos -------------------------------------------------------------------------------
    "photo.too_large": "That file is too large for me to download (limit {limit_mb} MB). "
                       "Please send a smaller photo.",
    "photo.unusable": "I can't use that file. Please send a JPEG, PNG or WEBP photo.",
    "photo.too_many_pixels": "That image is too large ({megapixels} megapixels). "
                             "Please send a smaller one.",
    # --- job status and results ---------------------------------------------------------------
    "status.queued": "⏳ #{job_id} is queued…",
    "status.generating": "🎬 #{job_id} is being generated…",
    "status.generating_pct": "🎬 #{job_id} is being generated… {progress}%",
    "status.uploading": "📦 #{job_id} is almost ready…",
    "done.caption": "#{job_id} · {model} · {credits} credits spent · balance {balance}",
    "done.link": "The file is too large to send here. Download it:",
    "fail.text": "#{job_id} failed: {reason}\nYour {credits} credits are back.",
    "reason.provider": "the video service could not make it (try another prompt or photo)",
    "reason.rejected": "the video service did not accept the request",
    "reason.storage": "the result could not be saved",
    "reason.deadline": "it took too long",
    "reason.other": "something went wrong",
    # --- balance, history, videos -------------------------------------------------------------
    "balance.text": "Available: {available} credits\nReserved for running jobs: {held}",
    "balance.expiring": "{credits} of them expire by {date}.",
    "balance.debt": "You owe {debt} credits; they are taken from your next credits.",
    "history.empty": "No credit history yet.",
    "history.title": "Credit history:",
    "history.line": "{date} {label} {amount} → {balance}",
    "ledger.grant": "added",
    "ledger.hold": "reserved",
    "ledger.settle": "spent",
    "ledger.release": "returned",
    "ledger.expire": "expired",
    "ledger.clawback": "taken back",
    "source.bonus": "welcome bonus",
    "source.checkin": "check-in",
    "source.redeem": "code",
    "source.admin": "from support",
    "source.purchase": "purchase",
    "source.job": "video",
    "videos.empty": "You have no videos yet. Press “Make a video” to start.",
    "videos.title": "Your recent videos:",
    "videos.line": "#{job_id} {model} · {state} · {date}",
    "videos.gone": "#{job_id} is no longer stored.",
    "videos.retrying": "#{job_id} is being saved again; it will arrive here shortly.",
    "state.pending": "queued",
    "state.generating": "generating",
    "state.uploading": "saving",
    "state.completed": "done",
    "state.failed": "failed",
    # --- earning credits ----------------------------------------------------------------------
    "checkin.done": "Checked in: +{credits} credits. Balance: {balance}.",
    "checkin.already": "You already checked in today. Next check-in from {when}.",
    "checkin.off": "Daily check-in is not available.",
    "redeem.usage": "Send the code like this: /redeem CODE",
    "redeem.done": "Code redeemed: +{credits} credits. Balance: {balance}.",
    "lang.choose": "Choose your language:",
    "lang.set": "Language set to English.",
    # --- top-up -------------------------------------------------------------------------------
    "topup.title": "Credit packages:",
    "topup.package": "{credits} credits · {price} {currency}",
    "topup.package_stars": "{credits} credits · {price} {currency} or {stars} ⭐",
    "topup.choose": "Choose a package:",
    "topup.method": "How would you like to pay?",
    "topup.link": "Pay for {credits} credits here; they arrive as soon as the payment is done.",
    "topup.none": "Buying credits is not available here yet. You can get credits by checking in "
                  "daily (/checkin), redeeming a code (/redeem CODE) or asking support.",
    "method.stripe": "Card",
    "method.creem": "Creem",
    "method.stars": "Telegram Stars",
    "stars.thanks": "Thank you! {credits} credits were added. Balance: {balance}.",
    "stars.already": "This payment was already credited.",
    # --- messages that arrive later (outbox) --------------------------------------------------
    "pay.credited": "Payment received: +{credits} credits. Balance: {balance}.",
    "pay.reversed_refund": "Your payment was refunded, so {credits} credits were taken back.",
    "pay.reversed_dispute": "Your payment is disputed, so {credits} credits were taken back.",
    "pay.debt": "You now owe {debt} credits; they are taken from your next credits.",
    # The item on a Stripe checkout page and a Stars invoice (payments/).
    "pay.item": "{credits} VideoFly credits",
    "pay.item_description": "{credits} credits for making videos, valid for {days} days.",
    "pay.item_description_forever": "{credits} credits for making videos; they never expire.",
    "note.admin_granted": "Support added {credits} credits. Balance: {balance}.",
    "note.admin_deducted": "Support took back {credits} credits. Balance: {balance}.",
    "note.reason": "Reason: {reason}",
    "note.admin_dispute": "Dispute at {provider}: order {order_id}, user #{user_id}, "
                          "{credits} credits.",
    # --- admin --------------------------------------------------------------------------------
    "admin.usage_grant": "Usage: /grant USER CREDITS [reason]",
    "admin.usage_deduct": "Usage: /deduct USER CREDITS [reason]",
    "admin.usage_user": "Usage: /user USER (#id, a Telegram id or a WeChat openid)",
    "admin.usage_code": "Usage: /code CREDITS [USES] [DAYS]",
    "admin.usage_refund": "Usage: /refund CHARGE_ID",
    "admin.bad_number": "“{value}” is not a whole number from 1 to {max}.",
    "admin.no_user": "No user {who}.",
    "admin.granted": "Granted {credits} credits to user #{user_id}. Their balance: {balance}.",
    "admin.deducted": "Took {credits} credits from user #{user_id}. Their balance: {balance}.",
    "admin.deduct_refused": "User #{user_id} has only {available} credits available; "
                            "nothing was taken.",
    "admin.user": "User #{user_id} · tier {tier} · language {language} · since {since}\n"
                  "Identities: {identities}\n"
                  "Available {available}, reserved {held}, debt {debt}",
    "admin.user_jobs": "Recent jobs:",
    "admin.user_no_jobs": "No jobs.",
    "admin.user_job": "#{job_id} {model} · {state} · {credits} credits · {date}",
    "admin.user_payments": "Recent payments:",
    "admin.user_no_payments": "No payments.",
    "admin.user_payment": "{provider} {order_id} · {amount} · {credits} credits · {state} · "
                          "{date}",
    "payment_state.pending": "pending",
    "payment_state.paid": "paid",
    "payment_state.refunded": "refunded",
    "payment_state.disputed": "disputed",
    "admin.code": "Code {code}: {credits} credits, {uses} use(s), {expiry}.",
    "admin.code_expires": "valid until {date}",
    "admin.code_forever": "no expiry",
    "admin.refunded": "Refunded; {credits} credits taken back.",
    "admin.refund_off": "Payments are not set up, so there is nothing to refund.",
    "stats.text": "Today: {today_users} new users, {today_done} jobs done, {today_failed} failed, "
                  "{today_granted} credits granted, {today_spent} spent.\n"
                  "Last 30 days: {month_users} new users, {month_done} jobs done, "
                  "{month_failed} failed, {month_granted} credits granted, {month_spent} spent.\n"
                  "Payments today: {today_paid} ({today_revenue}); "
                  "last 30 days: {month_paid} ({month_revenue}).",
    "stats.caption": "Last 30 days",
    "stats.credits": "Credits per day",
    "stats.jobs": "Jobs per day",
    "stats.granted": "granted",
    "stats.spent": "spent",
    "stats.done": "done",
    "stats.failed": "failed",
    # --- errors -------------------------------------------------------------------------------
    "err.insufficient": "You need {needed} credits but have {available}: {missing} more. "
                        "Get credits with /checkin, /redeem CODE or /topup.",
    "err.too_many_jobs": "You already have {limit} videos in progress, the most at once. "
                         "Please wait for one to finish.",
    "err.unknown_model": "That model is no longer available. Please choose again.",
    "err.invalid_choice": "That choice is not available for this model.",
    "err.not_found": "I can't find that.",
    "err.not_retryable": "That one cannot be retried.",
    "err.code_not_found": "That code does not exist. Check it and try again.",
    "err.code_expired": "That code has expired.",
    "err.code_used_up": "That code has been used up.",
    "err.already_redeemed": "You have already redeemed that code.",
    "err.invalid_amount": "That amount is not valid.",
    "err.unknown_package": "That package is no longer sold. Please choose again with /topup.",
    "err.payment_unavailable": "That way to pay is not available just now. Please try again "
                               "later or choose another.",
    "err.payment_not_found": "I can't find that payment.",
    "err.refund_failed": "The refund was refused; nothing was taken back. Check the charge and "
                         "try again.",
    "err.payment": "The payment could not be handled. Please try again.",
    "err.wallet": "Your credits could not be changed just now. Please try again.",
    "err.incident": "Something went wrong on our side (incident {incident}). "
                    "Please try again later.",
    # --- Telegram adapter (bot/telegram.py) ---------------------------------------------------
    "tg.checkout_refused": "This offer is no longer available. Please choose again with /topup.",
    # --- terminal (bot/console.py, videofly chat) ---------------------------------------------
    "console.hello": "VideoFly in your terminal. Type a menu number to choose, a photo's file "
                     "path to send it (several paths for an album), /help for the commands, "
                     "/quit to leave.",
    "console.saved": "Saved to {path}",
    "console.picture": "Picture saved to {path}",
    "console.stars": "{title}: {stars} Stars. Telegram Stars can only be paid inside Telegram.",
    "console.status": "… {text}",
    "console.failed": "That could not be shown here: {reason}",
    "console.bye": "Bye!",
    "console.log": "(log: {path})",
    # --- channel contract (numbered menus, expired buttons) ------------------------------------
    "menu.expired": "This menu has expired.",
}
